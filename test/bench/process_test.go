package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/angryninja/opencode-injector/test/bench/baseline"
	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

// The servers the server benchmarks compare, each a process of a binary
// built from this module with the same webhook library and TLS setup.
const (
	ours           = "opencode-injector serve"
	decodeAndAllow = "decode-and-allow"
	patchEcho      = "patch-echo"
)

// serverBinaries builds opencode-injector with the benchbaseline tag,
// whose bench-baseline command is the baseline servers (see package
// baseline): ours runs the same binary's serve, unless BENCH_INJECTOR_BINARY
// names another (e.g. one built from an older commit with the same flags,
// for its figures beside these). It returns the two paths.
func serverBinaries(b *testing.B, root string) (injector, baselines string) {
	b.Helper()
	baselines = filepath.Join(b.TempDir(), "opencode-injector")
	// As `make build` builds the image's binary, plus the tag: its pages
	// are part of the resident memory measured.
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-tags", "benchbaseline", "-o", baselines, "./cmd/opencode-injector")
	build.Dir, build.Stderr, build.Env = root, os.Stderr, append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		b.Fatalf("build the benchmark's opencode-injector: %v", err)
	}
	if injector = os.Getenv("BENCH_INJECTOR_BINARY"); injector == "" {
		injector = baselines
	}
	return injector, baselines
}

// benchServers are the three servers' command lines; review is the file
// the patch-echo server computes its patch from.
type benchServers struct {
	injector, baselines, kubeconfig, certDir, review string
}

// serverProcess is one running server.
type serverProcess struct {
	name, url  string
	metricsURL string // ours only: its controller-runtime metrics
	cmd        *exec.Cmd
}

// start runs the server called name on a free port; the caller stops it.
func (s benchServers) start(b *testing.B, name string) *serverProcess {
	b.Helper()
	port := strconv.Itoa(testenv.FreePort(b))
	p := &serverProcess{name: name, url: "https://127.0.0.1:" + port + webhook.Path}
	var args []string
	binary := s.baselines
	switch name {
	case ours:
		binary = s.injector
		metrics := testenv.FreeAddr(b)
		p.metricsURL = "http://" + metrics + "/metrics"
		args = []string{"serve", "--seed-image", benchSettings.SeedImage, "--metrics-bind-address", metrics, "--metrics-secure=false", "--health-probe-bind-address", "0"}
	case decodeAndAllow:
		args = []string{baseline.Command, "-mode", "allow"}
	case patchEcho:
		args = []string{baseline.Command, "-mode", "patch-echo", "-review", s.review, "--seed-image", benchSettings.SeedImage}
	}
	args = append(args, "--port", port, "--cert-dir", s.certDir)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig)
	p.cmd.Stderr = &bytes.Buffer{}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	return p
}

func (p *serverProcess) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
}

// waitUp waits until the server answers a review.
func (p *serverProcess) waitUp(b *testing.B, body []byte) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n, _ := load(p.url, body, 1, 200*time.Millisecond); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			p.stop()
			b.Fatalf("%s: no answer from %s\n%s", p.name, p.url, p.cmd.Stderr)
		}
	}
}

// waitListening waits until the server accepts connections, without
// sending it anything: its idle memory is read before its first review.
func (p *serverProcess) waitListening(b *testing.B) {
	b.Helper()
	u, err := url.Parse(p.url)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.stop()
			b.Fatalf("%s: not listening on %s: %v\n%s", p.name, u.Host, err, p.cmd.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReconciled waits until our claim provisioner has reconciled n
// Deployments: its informers hold every workspace by then.
func (p *serverProcess) waitReconciled(b *testing.B, n int) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if got, err := reconciled(p.metricsURL); err == nil && got >= float64(n) {
			return
		}
		if time.Now().After(deadline) {
			p.stop()
			b.Fatalf("%s: fewer than %d reconciles within 2 minutes\n%s", p.name, n, p.cmd.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func reconciled(metricsURL string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := testenv.Get(ctx, metricsURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, m := range families["controller_runtime_reconcile_total"].GetMetric() {
		if labels(m.GetLabel())["controller"] == "claim-provisioner" {
			total += m.GetCounter().GetValue()
		}
	}
	return total, nil
}

// memoryStatus is a process's resident memory now (VmRSS, split into
// RssAnon, the heap and stacks, and RssFile, mostly the binary's pages)
// and its peak so far (VmHWM).
type memoryStatus struct {
	rss, anon, file, peak int64
}

// memory reads the process's memoryStatus from /proc.
func (p *serverProcess) memory(b *testing.B) memoryStatus {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var m memoryStatus
	s := bufio.NewScanner(f)
	for s.Scan() {
		for key, into := range map[string]*int64{"VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file, "VmHWM:": &m.peak} {
			if v, ok := strings.CutPrefix(s.Text(), key); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				*into = kb << 10
			}
		}
	}
	if m.rss == 0 || m.anon == 0 || m.file == 0 || m.peak == 0 {
		b.Fatalf("no VmRSS, RssAnon, RssFile or VmHWM for %s", p.name)
	}
	return m
}

// envInt is the environment variable name as a positive number, else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// verdict is how a figure stands against its target.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}
