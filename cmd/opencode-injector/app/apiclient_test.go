package app

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/angryninja/opencode-injector/injection"
)

// TestTheAPIClientSpeaksHTTP2: the manager's requests to the API server go
// over HTTP/2 where it is offered. HTTP/1.1 would save about a megabyte of
// the idle heap (BENCHMARKS.md), but costs a connection and a handshake per
// concurrent request, and a dead watch would go unseen for minutes instead
// of client-go's HTTP/2 health check's seconds.
func TestTheAPIClientSpeaksHTTP2(t *testing.T) {
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
		if p != "HTTP/2.0" {
			t.Errorf("a request to the API server over %s, want HTTP/2.0 (got %q)", p, protos)
		}
	}
}
