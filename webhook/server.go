package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the API server sends admission reviews; deploy/ names it in
// the MutatingWebhookConfiguration.
const Path = "/inject"

var mutations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "opencode_injector_mutations_total",
	Help: "Admission reviews of labeled Deployments, by outcome (injected, unchanged, un-injected, denied).",
}, []string{"outcome"})

func init() {
	metrics.Registry.MustRegister(mutations)
	for _, o := range []string{OutcomeInjected, OutcomeUnchanged, OutcomeUninjected, OutcomeDenied} {
		mutations.WithLabelValues(o)
	}
}

// ServerOptions are the flags of `serve` that are not injection settings.
type ServerOptions struct {
	Host                    string // empty: all interfaces
	Port                    int
	CertDir                 string // holds tls.crt and tls.key, reloaded when they change
	MetricsBindAddress      string // "0" disables
	HealthProbeBindAddress  string // "0" disables
	LeaderElect             bool
	LeaderElectionNamespace string
}

// NewManager builds the controller-runtime manager that serves the webhook,
// health probes and metrics.
func NewManager(cfg *rest.Config, s Settings, o ServerOptions) (manager.Manager, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "opencode-injector.angryninja.cloud",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		WebhookServer:           ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}),
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	srv := mgr.GetWebhookServer()
	srv.Register(Path, &admission.Webhook{Handler: &Handler{Settings: s, Decoder: admission.NewDecoder(scheme)}})
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return nil, err
	}
	return mgr, nil
}
