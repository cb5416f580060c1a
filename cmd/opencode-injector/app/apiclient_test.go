package app

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/angryninja/opencode-injector/injection"
)

// TestTheAPIClientSpeaksHTTP1: the manager's requests to the API server go
// over HTTP/1.1 even to a server offering HTTP/2 (HTTP/2's per-stream
// buffers cost the idle process about a megabyte for a few watches).
func TestTheAPIClientSpeaksHTTP1(t *testing.T) {
	var mu sync.Mutex
	var protos []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	// Its discovery, answered 404, fails the start: the requests are made.
	_, _ = NewManager(cfg, injection.DefaultSettings("example.com/seed:1"), ServerOptions{MetricsBindAddress: "0", HealthProbeBindAddress: "0", CertDir: t.TempDir()})
	mu.Lock()
	defer mu.Unlock()
	if len(protos) == 0 {
		t.Fatal("the manager's client sent nothing")
	}
	for _, p := range protos {
		if p != "HTTP/1.1" {
			t.Errorf("a request to the API server over %s, want HTTP/1.1 only (got %q)", p, protos)
		}
	}
}
