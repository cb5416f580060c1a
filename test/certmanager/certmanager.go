// Package certmanager runs cert-manager's own controllers and CA injector,
// from the github.com/cert-manager/cert-manager module at the version
// deploy/'s CRDs are pinned to, in-process against a test API server, the
// way cert-manager's binaries register and run them.
//
// Only what a self-signed root → CA → serving certificate chain needs is
// started (see Controllers); ACME, Vault, Venafi, ClusterIssuers, the
// ingress and gateway shims, CertificateSigningRequests, metrics and
// revision clean-up are not.
package certmanager

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	cmutil "github.com/cert-manager/cert-manager/pkg/util"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	// The Issuer types the chain uses, registered for the issuers
	// controller, as cert-manager's controller binary imports them.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"

	"github.com/angryninja/opencode-injector/test/testenv"
)

// Controllers are the cert-manager controllers a selfsigned → CA chain
// needs, by the names cert-manager's controller binary enables them with
// (--controllers):
//
//   - issuers: sets the Issuers' Ready condition (a CA Issuer is Ready once
//     its Secret holds a CA); the signers only sign for a Ready Issuer.
//   - certificaterequests-approver: approves requests for cert-manager.io
//     issuers; unapproved requests are never signed.
//   - certificaterequests-issuer-selfsigned, certificaterequests-issuer-ca:
//     sign requests for the self-signed root and the CA Issuer.
//   - certificates-trigger: sets Issuing when a Certificate needs a
//     certificate (absent, expiring or changed spec).
//   - certificates-key-manager: generates the next private key (a
//     temporary Secret).
//   - certificates-request-manager: creates the CertificateRequest.
//   - certificates-issuing: writes the signed certificate, key and CA into
//     the target Secret and clears Issuing.
//   - certificates-readiness: sets the Certificate's Ready condition.
var Controllers = []string{
	issuers.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
}

// CertManager is cert-manager's controllers and CA injector, running.
type CertManager struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// Start runs Controllers and the CA injector (for the Mutating- and
// ValidatingWebhookConfigurations deploy/ declares, with Certificates as a
// CA source, as cainjector's defaults do) against the API server that
// kubeconfig names.
// restConfig is the same server, for the CA injector's manager.
func Start(kubeconfig string, restConfig *rest.Config) (*CertManager, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cm := &CertManager{cancel: cancel}

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig: kubeconfig,
		// The defaults of cert-manager's controller flags
		// --kube-api-qps and --kube-api-burst.
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cert-manager controller context: %w", err)
	}
	cctx, err := factory.Build()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cert-manager controller context: %w", err)
	}
	known := controllerpkg.Known()
	for _, name := range Controllers {
		construct, ok := known[name]
		if !ok {
			cancel()
			return nil, fmt.Errorf("cert-manager has no controller %q", name)
		}
		c, err := construct(factory)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("cert-manager controller %s: %w", name, err)
		}
		cm.run("controller "+name, func() error { return c.Run(1, ctx) })
	}
	// As the controller binary does: informers start after every
	// controller has registered the ones it needs.
	cctx.SharedInformerFactory.Start(ctx.Done())
	cctx.KubeSharedInformerFactory.Start(ctx.Done())

	mgr, err := newCAInjector(ctx, restConfig)
	if err != nil {
		cancel()
		cm.wg.Wait()
		return nil, err
	}
	cm.run("cainjector", func() error { return mgr.Start(ctx) })
	return cm, nil
}

// newCAInjector builds the CA injector's manager as cert-manager's
// cainjector binary does (its scheme, Secrets read uncached), with the
// reconcilers of the two webhook configuration kinds (cainjector's defaults
// also enable CRDs and APIServices, which deploy/ has none of to inject).
func newCAInjector(ctx context.Context, restConfig *rest.Config) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmscheme.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	skip := true
	mgr, err := ctrl.NewManager(cmutil.RestConfigWithUserAgent(restConfig, "cainjector"), ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cache.Options{ReaderFailOnMissingInformer: true},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The injector's controller is named after the kind it injects;
		// a second CertManager in one process (the demo restarts) may
		// reuse the name.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return nil, fmt.Errorf("cainjector manager: %w", err)
	}
	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cainjector: %w", err)
	}
	return mgr, nil
}

func (cm *CertManager) run(what string, f func() error) {
	cm.wg.Add(1)
	go func() {
		defer cm.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			cm.mu.Lock()
			cm.errs = append(cm.errs, fmt.Errorf("cert-manager %s: %w", what, err))
			cm.mu.Unlock()
		}
	}()
}

// Stop stops everything Start started and returns what failed while it ran.
func (cm *CertManager) Stop() error {
	cm.cancel()
	cm.wg.Wait()
	cm.mu.Lock()
	defer cm.mu.Unlock()
	return errors.Join(cm.errs...)
}

// CRDFiles are the CRD manifests of the cert-manager module deploy/ is
// pinned to (downloaded into the Go module cache, once).
func CRDFiles() ([]string, error) {
	all, err := testenv.CRDFiles()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range all {
		if strings.Contains(f, string(filepath.Separator)+"cert-manager@") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cert-manager CRDs among %d", len(all))
	}
	return out, nil
}
