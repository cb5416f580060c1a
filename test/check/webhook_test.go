package check

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/injection"
)

// serveAtService runs the injector (app.NewManager) at the injector
// Service's ClusterIP, port 443, with the serving certificate in tls:
// the API server (its service CIDR is on the loopback, see run) then calls
// the webhook the way a cluster's does, through the Service, verifying the
// certificate for the Service's DNS name against the caBundle. It returns
// what stops it; t's end stops it too.
func serveAtService(t *testing.T, tlsData map[string][]byte) (stop func()) {
	t.Helper()
	svc := &corev1.Service{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: injectorNamespace, Name: "opencode-injector"}, svc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": tlsData[corev1.TLSCertKey], "tls.key": tlsData[corev1.TLSPrivateKeyKey]} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mgr, err := app.NewManager(env.Config, injection.DefaultSettings(seedImage), app.ServerOptions{
		Host: svc.Spec.ClusterIP, Port: 443, CertDir: dir, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("the injector at the Service: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "443")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness only
		if err == nil {
			_ = conn.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("the injector at %s is not up: %v", addr, err)
		}
	}
}
