package main

import (
	"flag"
	"io"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
)

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Without --seed-image, the seed follows the injector's own image: the
	// image of its container, read from its own Pod and pinned by digest.
	s := defaultSettings()
	s.SeedImage = ""
	s.AddFlags(fs)
	o := app.ServerOptions{}
	fs.StringVar(&o.Self.Container, "self-container", "injector", "the container of this Pod (POD_NAMESPACE, POD_NAME) whose image, pinned by digest, is the seed image when --seed-image is empty")
	fs.StringVar(&o.CertDir, "cert-dir", "/var/run/opencode-injector/tls", "directory holding tls.crt and tls.key (cert-manager's Secret); reloaded when the files change")
	fs.IntVar(&o.Port, "port", 9443, "port of the webhook's HTTPS server")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8443", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS (the --cert-dir certificate), only to clients whose Kubernetes token may GET /metrics; false serves plain HTTP to anyone")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "serve HTTP/2 on the webhook and metrics ports; off by default, against HTTP/2's rapid-reset and stream-cancellation attacks (the API server and Prometheus speak HTTP/1.1)")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 disables them")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect, through a Lease in POD_NAMESPACE, the one replica that runs the claim provisioner (every replica serves the webhook)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("serve")
	o.LeaderElectionNamespace = os.Getenv("POD_NAMESPACE")
	o.Self.Namespace, o.Self.Pod = os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no Kubernetes API configuration")
		return 1
	}
	mgr, err := app.NewManager(cfg, s, o)
	if err != nil {
		log.Error(err, "cannot start")
		return 1
	}
	seedImage := s.SeedImage
	if seedImage == "" {
		seedImage = "(the injector's own image, pinned by digest, once its Pod reports it)"
	}
	log.Info("serving", "version", version, "seedImage", seedImage, "allowedGitHosts", s.AllowedGitHosts, "port", o.Port, "certDir", o.CertDir)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "stopped")
		return 1
	}
	return 0
}
