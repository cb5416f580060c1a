package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/webhook"
)

// mutations reads opencode_injector_mutations_total by outcome from the
// registry the manager's metrics endpoint serves.
func mutations(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "opencode_injector_mutations_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// webhookRequests is controller-runtime's count of admission reviews the
// webhook has answered.
func webhookRequests(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() == "controller_runtime_webhook_requests_total" {
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func TestMutationsAreCounted(t *testing.T) {
	ns := namespace(t, nil)
	before := mutations(t)
	d := fixture(t, "flux", ns)
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, get(t, d)); err != nil {
		t.Fatal(err)
	}
	bad := fixture(t, "ha", ns)
	bad.Annotations[contract.AnnotationRepo] = "ssh://github.com/a/b"
	_ = env.Client.Create(ctx, bad)
	stored := get(t, d)
	delete(stored.Labels, contract.LabelInject)
	if err := env.Client.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	after := mutations(t)
	for _, outcome := range []string{webhook.OutcomeInjected, webhook.OutcomeUnchanged, webhook.OutcomeDenied, webhook.OutcomeUninjected} {
		if after[outcome] < before[outcome]+1 {
			t.Errorf("outcome %s: %v -> %v", outcome, before[outcome], after[outcome])
		}
	}
}

// writeServingCert writes a self-signed tls.crt/tls.key for 127.0.0.1
// with the given common name.
func writeServingCert(t *testing.T, dir, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then certificate, each through a rename, as kubelet's
	// atomic Secret volume update does.
	for name, block := range map[string]*pem.Block{"tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}, "tls.crt": {Type: "CERTIFICATE", Bytes: der}} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func servedCN(addr string) string {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate
	if err != nil {
		return ""
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestServingCertificateReloads: when cert-manager renews the serving
// certificate, the webhook serves the new one without a restart.
func TestServingCertificateReloads(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, "first")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	mgr, err := webhook.NewManager(env.Config, settings, webhook.ServerOptions{
		Host: "127.0.0.1", Port: port, CertDir: dir, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() { cancel(); <-done }()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitFor(t, func() bool { return servedCN(addr) == "first" }, "the first certificate")
	writeServingCert(t, dir, "renewed")
	waitFor(t, func() bool { return servedCN(addr) == "renewed" }, "the renewed certificate")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not served within 30s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
