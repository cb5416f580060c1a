package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/angryninja/opencode-injector/test/testenv"
)

// prometheusBinary is Debian's Prometheus (hack/test-deps.sh installs it).
// Without it the test cannot run: in CI that is a failure, elsewhere a
// skip that says why.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prometheus is not installed, and CI must run it: %v", err)
		}
		t.Skipf("prometheus is not installed (Debian: apt-get install prometheus): %v", err)
	}
	return bin
}

// The target labels the ServiceMonitor gives the injector's series.
const scrapeLabels = `{namespace: opencode-system, service: opencode-injector}`

// startPrometheus runs a real Prometheus that scrapes target every second
// with the ServiceMonitor's target labels, and returns its query URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := prometheusBinary(t)
	dir := t.TempDir()
	config := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: opencode-injector\n    static_configs:\n      - targets: [%q]\n        labels: %s\n", target, scrapeLabels)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return "http://" + addr
}

// query runs an instant query and returns its result's series count.
func query(ctx context.Context, base, expr string) (int, error) {
	resp, err := testenv.Get(ctx, base+"/api/v1/query?query="+url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("query %s: %w", expr, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", expr, body.Error)
	}
	return len(body.Data.Result), nil
}

// TestDashboardQueriesReturnData: a real Prometheus scrapes the injector's
// metrics registry (what its /metrics serves) after it has answered
// reviews, and every query of the dashboard, with Grafana's variables
// filled in, parses and returns data. cert-manager's certificate metrics
// are not the injector's: that one query is only checked to parse.
func TestDashboardQueriesReturnData(t *testing.T) {
	d := readDashboard(t)
	srv := httptest.NewServer(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	serveReviews(t)
	base := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// rate() needs two samples in its window: wait for a few scrapes.
	for {
		if n, err := query(ctx, base, `count_over_time(up{service="opencode-injector"}[1m]) >= 4`); err == nil && n > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("Prometheus never scraped the injector four times")
		case <-time.After(500 * time.Millisecond):
		}
	}
	fill := strings.NewReplacer("$namespace", "opencode-system", "$__rate_interval", "1m")
	queries := 0
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			expr := fill.Replace(q.Expr)
			n, err := query(ctx, base, expr)
			switch {
			case err != nil:
				t.Errorf("panel %q: %v", p.Title, err)
			case n == 0 && !strings.Contains(expr, "certmanager_"):
				t.Errorf("panel %q: %s returns no data", p.Title, expr)
			}
			queries++
		}
	}
	if queries < 8 {
		t.Errorf("only %d queries ran", queries)
	}
}
