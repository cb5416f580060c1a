package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/test/testenv"
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
	// Key first, then certificate, each through a rename.
	for name, data := range testenv.LoopbackServing(t, cn).TLSFiles() {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// projectServingCert updates dir the way the kubelet updates a mounted
// Secret: the files live in a timestamped directory, "..data" points at it,
// tls.crt and tls.key point into "..data", and an update swaps "..data"
// atomically with a rename.
func projectServingCert(t *testing.T, dir, cn string) {
	t.Helper()
	version := "..v-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.Mkdir(filepath.Join(dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range testenv.LoopbackServing(t, cn).TLSFiles() {
		if err := os.WriteFile(filepath.Join(dir, version, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
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

// startManager runs another injector manager against the test's API
// server, its webhook on a free port with the serving certificate in dir
// (s and o set anything else). It returns the webhook's address and a stop that
// cancels the manager and returns what Start returned; the test's cleanup
// stops it too.
func startManager(t *testing.T, dir string, s injection.Settings, o app.ServerOptions) (string, func() error) {
	t.Helper()
	o.Host, o.Port, o.CertDir = "127.0.0.1", testenv.FreePort(t), dir
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = "0"
	}
	if o.HealthProbeBindAddress == "" {
		o.HealthProbeBindAddress = "0"
	}
	mgr, err := app.NewManager(env.Config, s, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("the manager did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), stop
}

// TestServingCertificateReloads: when cert-manager renews the serving
// certificate, the webhook serves the new one without a restart.
func TestServingCertificateReloads(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, "first")
	addr, _ := startManager(t, dir, settings, app.ServerOptions{})
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

// TestCertificateRotationUnderLoad swaps the serving certificate the way the
// kubelet updates a mounted Secret (an atomic symlink swap), twice, while
// admission reviews keep arriving over new and kept-alive connections: none
// fails, and new handshakes see the new certificate.
func TestCertificateRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	projectServingCert(t, dir, "first")
	addr, _ := startManager(t, dir, settings, app.ServerOptions{})
	waitFor(t, func() bool { return servedCN(addr) == "first" }, "the first certificate")

	body := testenv.AdmissionReview(t, fixture(t, "flux", "opencode"))
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for worker := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the workers keep their connection, half dial each time.
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: worker%2 == 1} //nolint:gosec // the test swaps self-signed certificates
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := c.Post("https://"+addr+webhook.Path, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				var out admissionv1.AdmissionReview
				if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || !out.Response.Allowed {
					failed.Add(1)
					t.Logf("review failed: %v %+v", err, out.Response)
				}
				resp.Body.Close()
			}
		}()
	}
	for _, cn := range []string{"second", "third"} {
		time.Sleep(500 * time.Millisecond)
		projectServingCert(t, dir, cn)
		waitFor(t, func() bool { return servedCN(addr) == cn }, "the "+cn+" certificate")
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if sent.Load() < 20 || failed.Load() != 0 {
		t.Errorf("%d of %d admission reviews failed during rotation", failed.Load(), sent.Load())
	}
}

// TestShutdownFinishesReviewsInFlight stops the webhook server while
// admission reviews are half sent: each is still answered, allowed and
// injected, and only then does the server stop (the pod's preStop sleep has
// already taken its endpoint out of the Service).
func TestShutdownFinishesReviewsInFlight(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, "shutdown")
	addr, stop := startManager(t, dir, settings, app.ServerOptions{})
	waitFor(t, func() bool { return servedCN(addr) == "shutdown" }, "the webhook server")

	body := testenv.AdmissionReview(t, fixture(t, "flux", "opencode"))
	const inFlight = 8
	type result struct {
		status int
		review admissionv1.AdmissionReview
		err    error
	}
	results := make(chan result, inFlight)
	var writers []*io.PipeWriter
	for range inFlight {
		r, w := io.Pipe()
		writers = append(writers, w)
		go func() {
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a self-signed test certificate
			resp, err := (&http.Client{Transport: tr}).Post("https://"+addr+webhook.Path, "application/json", r)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			var out result
			out.status, out.err = resp.StatusCode, json.NewDecoder(resp.Body).Decode(&out.review)
			results <- out
		}()
		if _, err := w.Write(body[:len(body)/2]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the server is reading every request
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }() // SIGTERM, after preStop
	time.Sleep(300 * time.Millisecond)
	for _, w := range writers {
		if _, err := w.Write(body[len(body)/2:]); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	for range inFlight {
		r := <-results
		if r.err != nil || r.status != http.StatusOK || r.review.Response == nil || !r.review.Response.Allowed || len(r.review.Response.Patch) == 0 {
			t.Errorf("a review in flight at shutdown failed: status %d, %v, %+v", r.status, r.err, r.review.Response)
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("the manager stopped with %v", err)
	}
	if servedCN(addr) != "" {
		t.Error("the server still accepts connections after shutdown")
	}
}
