// Package app wires the opencode-injector process: the controller-runtime
// manager, leader election, metrics authentication, the seed image (the
// injector's own, once its Pod reports it) and the claim provisioner's
// registration. The serve command, hack/demo and the tests build the
// process through it; no other package of this module imports it.
package app

import (
	"errors"
	"fmt"
	"time"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/provision"
	"github.com/angryninja/opencode-injector/webhook"
)

// LeaderElectionID is the Lease the replicas elect the claim provisioner's
// leader by, in the injector's namespace.
const LeaderElectionID = "opencode-injector.angryninja.cloud"

// ServerOptions are the flags of `serve` that are not injection settings.
type ServerOptions struct {
	Host               string // empty: all interfaces
	Port               int
	CertDir            string // holds tls.crt and tls.key, reloaded when they change
	MetricsBindAddress string // "0" disables
	// MetricsSecure serves /metrics over HTTPS (the certificate in CertDir)
	// to clients whose token the API server authenticates and authorizes
	// for GET /metrics, as kubebuilder projects do.
	MetricsSecure bool
	// EnableHTTP2 offers HTTP/2 on the webhook and metrics servers; off, they
	// speak HTTP/1.1 only (see TLSOptions).
	EnableHTTP2             bool
	HealthProbeBindAddress  string // "0" disables
	LeaderElect             bool
	LeaderElectionNamespace string
	// LeaderElectionIdentity names this replica in the Lease and in the
	// Events of the claims it creates (default: the host name, which is
	// the Pod's name, and a random suffix).
	LeaderElectionIdentity string
	// Self is the injector's own container. When Settings.SeedImage is
	// empty, the seed image is that container's image pinned by the digest
	// the kubelet reports; until it is known the webhook is not ready and
	// answers every review with an error (failurePolicy Fail: nothing is
	// injected with a guessed image).
	Self Self
	// SelfPoll is how often the Pod is read until its image is known
	// (default 2s).
	SelfPoll time.Duration
}

// Self names a container of a Pod: the downward API's POD_NAMESPACE and
// POD_NAME, and the container's name.
type Self struct {
	Namespace, Pod, Container string
}

// NewManager builds the controller-runtime manager that serves the webhook,
// health probes and metrics.
func NewManager(cfg *rest.Config, s injection.Settings, o ServerOptions) (manager.Manager, error) {
	followSelf := s.SeedImage == ""
	if err := s.Validate(); err != nil {
		return nil, err
	}
	identity, lock, leaderEvents, err := leaderLock(cfg, o)
	if err != nil {
		return nil, err
	}
	metricsOptions := metricsserver.Options{BindAddress: o.MetricsBindAddress, TLSOpts: TLSOptions(o.EnableHTTP2)}
	if o.MetricsSecure {
		metricsOptions.SecureServing = true
		metricsOptions.CertDir = o.CertDir
		metricsOptions.FilterProvider = metricsAuth
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		// client-go's own scheme, filled at its init: a second copy
		// would hold every built-in type twice.
		Scheme:                              clientgoscheme.Scheme,
		Metrics:                             metricsOptions,
		HealthProbeBindAddress:              o.HealthProbeBindAddress,
		LeaderElection:                      o.LeaderElect,
		LeaderElectionID:                    LeaderElectionID,
		LeaderElectionNamespace:             o.LeaderElectionNamespace,
		LeaderElectionResourceLockInterface: lock,
		LeaderElectionReleaseOnCancel:       true, // the process exits right after
		// The claim provisioner's cache: labeled Deployments and the
		// claims the injector created, nothing else, without their
		// managedFields (nothing here reads them; they are most of a
		// cached object's size).
		Cache:         cache.Options{ByObject: provision.CacheOptions(), DefaultTransform: cache.TransformStripManagedFields()},
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: TLSOptions(o.EnableHTTP2)}),
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if leaderEvents != nil {
		leaderEvents.set(mgr.GetEventRecorder("opencode-injector-leader-election"))
	}
	// Creates missing workspace claims; on the leader only.
	if err := provision.Add(mgr, identity); err != nil {
		return nil, fmt.Errorf("add the claim provisioner: %w", err)
	}
	srv := mgr.GetWebhookServer()
	gate := webhook.NewSeedImageGate(&webhook.Handler{Settings: s})
	if followSelf {
		gate.SetError(errors.New("the seed image is not known yet"))
		if err := mgr.Add(&selfImageResolver{reader: mgr.GetAPIReader(), self: o.Self, poll: o.SelfPoll, found: func(image string) {
			s := s
			s.SeedImage = image
			gate.Set(&webhook.Handler{Settings: s, Claims: mgr.GetAPIReader(), Access: mgr.GetClient(), Namespaces: mgr.GetClient()})
		}, failed: gate.SetError}); err != nil {
			return nil, err
		}
	} else {
		gate.Set(&webhook.Handler{Settings: s, Claims: mgr.GetAPIReader(), Access: mgr.GetClient(), Namespaces: mgr.GetClient()})
	}
	srv.Register(webhook.Path, &admission.Webhook{Handler: gate, LogConstructor: webhook.LogConstructor})
	srv.Register(webhook.ScalePath, &admission.Webhook{Handler: &webhook.ScaleGuard{Deployments: mgr.GetClient(), Live: mgr.GetAPIReader()}, LogConstructor: webhook.LogConstructor})
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("seed-image", gate.Ready); err != nil {
		return nil, err
	}
	return mgr, nil
}
