package e2e

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// negotiated is the protocol a client offering h2 first gets from addr.
func negotiated(addr string) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // a self-signed test certificate
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().NegotiatedProtocol, nil
}

// TestHTTP2IsOffUnlessAskedFor: an HTTP/2 client is refused h2 on the
// webhook port and on the metrics port by default (HTTP/2's rapid-reset and
// stream-cancellation attacks), and gets it on both with --enable-http2.
func TestHTTP2IsOffUnlessAskedFor(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, "http2")
	for _, enabled := range []bool{false, true} {
		want := "http/1.1"
		if enabled {
			want = "h2"
		}
		metricsAddr := testenv.FreeAddr(t)
		webhookAddr, stop := startManager(t, dir, settings, app.ServerOptions{MetricsBindAddress: metricsAddr, MetricsSecure: true, EnableHTTP2: enabled})
		for port, addr := range map[string]string{"webhook": webhookAddr, "metrics": metricsAddr} {
			var got string
			waitFor(t, func() bool {
				var err error
				got, err = negotiated(addr)
				return err == nil
			}, "the "+port+" port")
			if got != want {
				t.Errorf("enable-http2=%v: the %s port negotiated %q, want %q", enabled, port, got, want)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}
