package main

import (
	"flag"
	"io"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/angryninja/opencode-injector/webhook"
)

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := defaultSettings()
	s.AddFlags(fs)
	o := webhook.ServerOptions{}
	fs.StringVar(&o.CertDir, "cert-dir", "/var/run/opencode-injector/tls", "directory holding tls.crt and tls.key (cert-manager's Secret); reloaded when the files change")
	fs.IntVar(&o.Port, "port", 9443, "port of the webhook's HTTPS server")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 disables them")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader through a Lease (not needed to serve the webhook: every replica serves)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	o.LeaderElectionNamespace = os.Getenv("POD_NAMESPACE")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	mgr, err := webhook.NewManager(cfg, s, o)
	if err != nil {
		return err
	}
	ctrl.Log.Info("serving", "version", version, "seedImage", s.SeedImage, "allowedGitHosts", s.AllowedGitHosts, "port", o.Port)
	return mgr.Start(ctrl.SetupSignalHandler())
}
