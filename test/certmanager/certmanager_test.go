package certmanager_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apiutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/certmanager"
	"github.com/angryninja/opencode-injector/test/kubelet"
	"github.com/angryninja/opencode-injector/test/testenv"
)

const (
	ns          = "opencode-system"
	caCert      = "opencode-injector-ca"
	servingCert = "opencode-injector-serving"
	webhookName = "opencode-injector"
)

// overlay is what the test changes in deploy/ to reach the webhooks served
// in-process on 127.0.0.1: the Service references become URLs, and the
// serving Certificate gets an IP SAN for 127.0.0.1. Nothing else.
const overlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %[1]s
patches:
  - target: {kind: Certificate, name: opencode-injector-serving}
    patch: |
      - op: add
        path: /spec/ipAddresses
        value: ["127.0.0.1"]
  - target: {kind: MutatingWebhookConfiguration, name: opencode-injector}
    patch: |
      - op: replace
        path: /webhooks/0/clientConfig
        value: {url: "https://%[2]s/inject"}
  - target: {kind: ValidatingWebhookConfiguration, name: opencode-injector}
    patch: |
      - op: replace
        path: /webhooks/0/clientConfig
        value: {url: "https://%[2]s/scale"}
`

type harness struct {
	t      *testing.T
	ctx    context.Context
	c      client.Client
	addr   string // the webhook's host:port
	secret string // the serving Certificate's Secret
}

// TestCertManagerIssuesTheWebhookTLS applies deploy/ to a real API server
// with cert-manager's own controllers and CA injector running, and has the
// API server call the webhook over the TLS cert-manager issued; then renews
// the serving certificate through cert-manager while Deployments keep
// being created and updated.
func TestCertManagerIssuesTheWebhookTLS(t *testing.T) {
	ctx := t.Context()
	// cert-manager logs through klog; the webhook and the CA injector
	// (controller-runtime) log there too.
	ctrl.SetLogger(klog.NewKlogr())
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := testenv.Assets(root)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := certmanager.CRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, c: c, addr: testenv.FreeAddr(t)}

	// deploy/, as kustomize renders it, with only the overlay's changes.
	docs := h.render(root)
	h.apply(docs)
	h.secret = servingSecretName(t, docs)

	// cert-manager's controllers and CA injector, with a kubeconfig of
	// their own as they would have in a cluster.
	kubeconfig := writeKubeconfig(t, env)
	cm, err := certmanager.Start(kubeconfig, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cm.Stop(); err != nil {
			t.Error(err)
		}
	})

	// The chain: self-signed root Issuer → CA Certificate → CA Issuer →
	// serving Certificate, every one Ready.
	for _, name := range []string{"opencode-injector-selfsigned", "opencode-injector-ca"} {
		h.waitIssuerReady(name)
	}
	for _, name := range []string{caCert, servingCert} {
		h.waitCertificateReady(name, 1)
	}
	ca := h.secretData(caCert)
	serving := h.secretData(h.secret)
	caPEM := ca[corev1.TLSCertKey]
	if !bytes.Equal(serving["ca.crt"], caPEM) {
		t.Fatal("the serving Secret's ca.crt is not the CA Certificate's certificate")
	}
	leaf := verifyServing(t, serving, caPEM)

	// The CA injector writes the CA (the serving Secret's ca.crt) into both
	// webhook configurations: the injection and the scale guard.
	caBundle := h.waitCABundle(caPEM)

	// The webhook serves the Secret as the kubelet projects it into the
	// injector's cert dir, reloading it when it changes.
	certDir := filepath.Join(t.TempDir(), "tls")
	if err := kubelet.ProjectSecret(certDir, serving); err != nil {
		t.Fatal(err)
	}
	done := h.serveWebhook(cfg, certDir)
	if got := h.served(); !got.Equal(leaf) {
		t.Fatalf("the webhook serves %s, not the certificate cert-manager issued", got.Subject)
	}

	// A labeled Deployment created through the API server is injected:
	// the API server trusted the caBundle cert-manager injected and the
	// certificate cert-manager issued (failurePolicy is Fail).
	workspaces := map[string]string{contract.LabelWorkspaces: contract.LabelWorkspacesEnabled}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "opencode", Labels: workspaces}}); err != nil {
		t.Fatal(err)
	}
	fixture := h.fixture(root)
	first := fixture.DeepCopy()
	first.Name = "opencode-first"
	if err := c.Create(ctx, first); err != nil {
		t.Fatalf("create a labeled Deployment through the API server: %v", err)
	}
	injected(t, first)
	h.scaleRefused(first)

	t.Run("renewal under load", func(t *testing.T) {
		h.t = t
		h.renewUnderLoad(fixture, certDir, leaf, caBundle, done)
	})
}

// renewUnderLoad renews the serving certificate the way `cmctl renew`
// does while Deployments are created and updated through the API server.
func (h *harness) renewUnderLoad(fixture *appsv1.Deployment, certDir string, oldLeaf *x509.Certificate, caBundle []byte, done <-chan error) {
	t, ctx := h.t, h.ctx
	oldKey := h.secretData(h.secret)[corev1.TLSPrivateKeyKey]

	// The kubelet: Secret volumes follow the Secret.
	syncCtx, stopSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		last := h.secretData(h.secret)[corev1.TLSCertKey]
		for syncCtx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			var s corev1.Secret
			if err := h.c.Get(syncCtx, client.ObjectKey{Namespace: ns, Name: h.secret}, &s); err != nil {
				continue
			}
			if !bytes.Equal(s.Data[corev1.TLSCertKey], last) {
				if err := kubelet.ProjectSecret(certDir, s.Data); err != nil {
					t.Error(err)
					return
				}
				last = s.Data[corev1.TLSCertKey]
			}
		}
	}()
	defer func() { stopSync(); <-syncDone }()

	// The load: two writers, each creating a Deployment and updating it,
	// again and again; every stored object must come back injected.
	var (
		requests, failures atomic.Int64
		mu                 sync.Mutex
		failed             []string
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				d := fixture.DeepCopy()
				d.Name = fmt.Sprintf("opencode-load-%d-%d", w, i)
				err := h.c.Create(context.Background(), d)
				if err == nil {
					requests.Add(1)
					d.Spec.Template.Annotations = map[string]string{"example.com/restartedAt": strconv.Itoa(i)}
					err = h.c.Update(context.Background(), d)
				}
				if err == nil && !isInjected(d) {
					err = fmt.Errorf("%s stored without injection", d.Name)
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopLoad()
			wg.Wait()
		}
	}
	defer stop()
	waitN := func(n int64) {
		target := requests.Load() + n
		deadline := time.Now().Add(time.Minute)
		for requests.Load() < target && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitN(20)
	before := requests.Load()

	// cmctl renew: set the Issuing condition on the Certificate's status.
	var crt cmapi.Certificate
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: servingCert}, &crt); err != nil {
		t.Fatal(err)
	}
	revision := *crt.Status.Revision
	apiutil.SetCertificateCondition(&crt, crt.Generation, cmapi.CertificateConditionIssuing,
		cmmeta.ConditionTrue, "ManuallyTriggered", "Certificate re-issuance manually triggered")
	if err := h.c.Status().Update(ctx, &crt); err != nil {
		t.Fatalf("trigger renewal: %v", err)
	}
	h.waitCertificateReady(servingCert, revision+1)
	serving := h.secretData(h.secret)
	leaf := verifyServing(t, serving, caBundle)
	if leaf.Equal(oldLeaf) {
		t.Fatal("the renewal issued the same certificate")
	}
	if bytes.Equal(serving[corev1.TLSPrivateKeyKey], oldKey) {
		t.Error("the renewal kept the private key; deploy/ asks for rotationPolicy Always")
	}
	deadline := time.Now().Add(time.Minute)
	for !h.served().Equal(leaf) {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the webhook stopped during the renewal: %v", err)
	default:
	}
	// Requests keep passing on the renewed certificate.
	waitN(20)
	stop()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the renewal; first: %s", n, requests.Load(), failed[0])
	}
	t.Logf("%d creates and updates through the API server, %d of them during and after the renewal, %d failed", requests.Load(), requests.Load()-before, failures.Load())

	for kind, bundles := range h.caBundles() {
		for i, got := range bundles {
			if !bytes.Equal(got, caBundle) {
				t.Errorf("the renewal changed the caBundle of %s webhook %d", kind, i)
			}
		}
	}
}

func (h *harness) render(root string) [][]byte {
	t := h.t
	t.Helper()
	dir := t.TempDir()
	deploy, err := filepath.Rel(dir, filepath.Join(root, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), fmt.Appendf(nil, overlay, deploy, h.addr), 0o644); err != nil {
		t.Fatal(err)
	}
	docs, err := testenv.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// apply creates every document in kustomize's order (the namespace first,
// the webhook configuration last).
func (h *harness) apply(docs [][]byte) {
	h.t.Helper()
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			h.t.Fatal(err)
		}
		if err := h.c.Create(h.ctx, u); err != nil {
			h.t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// servingSecretName is the Secret the injector's Deployment mounts as its
// cert dir, checked to be the serving Certificate's.
func servingSecretName(t *testing.T, docs [][]byte) string {
	t.Helper()
	var mounted, issued string
	for _, doc := range docs {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					mounted = v.Secret.SecretName
				}
			}
		case "Certificate":
			var crt cmapi.Certificate
			if err := yaml.Unmarshal(doc, &crt); err != nil {
				t.Fatal(err)
			}
			if crt.Name == servingCert {
				issued = crt.Spec.SecretName
			}
		}
	}
	if mounted == "" || mounted != issued {
		t.Fatalf("the injector mounts Secret %q, the serving Certificate writes %q", mounted, issued)
	}
	return mounted
}

func writeKubeconfig(t *testing.T, env *envtest.Environment) string {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: "cert-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (h *harness) poll(what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within 2 minutes; last seen: %s", what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) waitIssuerReady(name string) {
	h.poll("Issuer "+name+" Ready", func() (bool, string) {
		var iss cmapi.Issuer
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: name}, &iss); err != nil {
			return false, err.Error()
		}
		for _, c := range iss.Status.Conditions {
			if c.Type == cmapi.IssuerConditionReady {
				return c.Status == cmmeta.ConditionTrue, c.Reason + ": " + c.Message
			}
		}
		return false, "no Ready condition"
	})
}

// waitCertificateReady waits until Certificate name is Ready at revision.
func (h *harness) waitCertificateReady(name string, revision int) {
	h.poll(fmt.Sprintf("Certificate %s Ready at revision %d", name, revision), func() (bool, string) {
		var crt cmapi.Certificate
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: name}, &crt); err != nil {
			return false, err.Error()
		}
		if crt.Status.Revision == nil || *crt.Status.Revision < revision {
			return false, fmt.Sprintf("revision %v, conditions %v", crt.Status.Revision, crt.Status.Conditions)
		}
		for _, c := range crt.Status.Conditions {
			if c.Type == cmapi.CertificateConditionIssuing && c.Status == cmmeta.ConditionTrue {
				return false, "Issuing"
			}
		}
		for _, c := range crt.Status.Conditions {
			if c.Type == cmapi.CertificateConditionReady {
				return c.Status == cmmeta.ConditionTrue, c.Reason + ": " + c.Message
			}
		}
		return false, "no Ready condition"
	})
}

func (h *harness) secretData(name string) map[string][]byte {
	h.t.Helper()
	var s corev1.Secret
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		h.t.Fatal(err)
	}
	return s.Data
}

// caBundles are the caBundles of every webhook of both configurations,
// by kind.
func (h *harness) caBundles() map[string][][]byte {
	h.t.Helper()
	var mutating admissionregistrationv1.MutatingWebhookConfiguration
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	bundles := map[string][][]byte{}
	for _, obj := range []client.Object{&mutating, &validating} {
		if err := h.c.Get(h.ctx, client.ObjectKey{Name: webhookName}, obj); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, w := range mutating.Webhooks {
		bundles["MutatingWebhookConfiguration"] = append(bundles["MutatingWebhookConfiguration"], w.ClientConfig.CABundle)
	}
	for _, w := range validating.Webhooks {
		bundles["ValidatingWebhookConfiguration"] = append(bundles["ValidatingWebhookConfiguration"], w.ClientConfig.CABundle)
	}
	return bundles
}

// waitCABundle waits for the CA injector to write want into every webhook
// of the mutating configuration (the injection) and the validating one
// (the scale guard), and returns it.
func (h *harness) waitCABundle(want []byte) []byte {
	h.poll("caBundle injected into both webhook configurations "+webhookName, func() (bool, string) {
		var missing []string
		for kind, bundles := range h.caBundles() {
			for i, got := range bundles {
				if !bytes.Equal(got, want) {
					missing = append(missing, fmt.Sprintf("%s webhook %d has %d bytes of caBundle", kind, i, len(got)))
				}
			}
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})
	return want
}

// scaleRefused scales the workspace d to 2 replicas through the API server:
// the scale guard's own denial proves the API server reached it over TLS
// it verified with the caBundle the CA injector wrote into the validating
// configuration (failurePolicy Fail: without that trust, the error would
// be the API server's, not the guard's).
func (h *harness) scaleRefused(d *appsv1.Deployment) {
	h.t.Helper()
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 2}}
	err := h.c.SubResource("scale").Update(h.ctx, d, client.WithSubResourceBody(scale))
	if err == nil || !strings.Contains(err.Error(), "is an OpenCode workspace") {
		h.t.Fatalf("scaling workspace %s to 2 replicas: want the scale guard's denial, got %v", d.Name, err)
	}
}

// verifyServing checks the serving Secret: a key pair for 127.0.0.1 and the
// Service's DNS names, issued by the CA in caPEM.
func verifyServing(t *testing.T, data map[string][]byte, caPEM []byte) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatalf("the serving Secret's tls.crt and tls.key: %v", err)
	}
	leaf := pair.Leaf
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in the caBundle")
	}
	for _, name := range []string{"127.0.0.1", "opencode-injector.opencode-system.svc"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("the serving certificate for %s: %v", name, err)
		}
	}
	return leaf
}

// serveWebhook starts the injector's manager, as `serve --cert-dir` does,
// on the address the overlay put into the webhook configuration.
func (h *harness) serveWebhook(cfg *rest.Config, certDir string) <-chan error {
	t := h.t
	t.Helper()
	host, port, _ := net.SplitHostPort(h.addr)
	p, _ := strconv.Atoi(port)
	mgr, err := app.NewManager(cfg, injection.DefaultSettings(injection.ImageRepository+":v0.0.0-certmanager"), app.ServerOptions{
		Host: host, Port: p, CertDir: certDir, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook: %v", err)
		}
	})
	h.poll("the webhook serving on "+h.addr, func() (bool, string) { return h.served() != nil, "" })
	return done
}

// served is the certificate the webhook presents now, on a new connection.
func (h *harness) served() *x509.Certificate {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", h.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate
	if err != nil {
		return nil
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func (h *harness) fixture(root string) *appsv1.Deployment {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "test", "fixtures", "app-template", "flux.rendered.yaml"))
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := manifest.FirstDeployment(b)
	if err != nil {
		h.t.Fatal(err)
	}
	d.Namespace = "opencode"
	return d
}

func isInjected(d *appsv1.Deployment) bool {
	ics := d.Spec.Template.Spec.InitContainers
	return len(ics) > 0 && ics[0].Name == contract.SeedContainerName && d.Annotations[contract.AnnotationInjected] != ""
}

func injected(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if !isInjected(d) {
		t.Fatalf("Deployment %s was stored without injection", d.Name)
	}
}
