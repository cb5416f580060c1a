package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

// loadDuration is how long each concurrency level runs (BENCH_DURATION).
func loadDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BENCH_DURATION")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Second
}

// BenchmarkServerTLS sends what the API server sends (keep-alive HTTPS
// POSTs of AdmissionReview v1, a CREATE of the flux fixture) to
// `opencode-injector serve` and then to a decode-and-allow server built on
// the same library, at concurrency 1, 16 and 64, and prints throughput,
// p50 and p99 latency and each server's peak RSS. Run it once:
// -benchtime 1x.
func BenchmarkServerTLS(b *testing.B) {
	_, cfg, root := startAPIServer(b)
	bin := b.TempDir()
	for _, pkg := range []string{"./cmd/opencode-injector", "./test/bench/allowserver"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir, build.Stderr = root, os.Stderr
		if err := build.Run(); err != nil {
			b.Fatalf("build %s: %v", pkg, err)
		}
	}
	kubeconfig := writeKubeconfig(b, cfg)
	certDir, _ := servingCert(b)
	body := admissionReview(b, fixture(b, root))
	durations := loadDuration()

	type result struct {
		perSecond float64
		p50, p99  time.Duration
	}
	results := map[string]map[int]result{}
	const cached = "opencode-injector serve, 200 workspaces cached"
	for _, srv := range []struct{ name, binary string }{
		{"opencode-injector serve", "opencode-injector"},
		{"decode-and-allow", "allowserver"},
		// The scale guard's and the claim provisioner's informers cache
		// labeled Deployments (and the injector's claims): the same server
		// once the cluster holds 200 workspaces shows what they add.
		{cached, "opencode-injector"},
	} {
		if srv.name == cached {
			createWorkspaces(b, cfg, root, 200)
		}
		port := testenv.FreePort(b)
		args := []string{"--port", strconv.Itoa(port), "--cert-dir", certDir}
		if srv.binary == "opencode-injector" {
			args = append([]string{"serve", "--seed-image", benchSettings.SeedImage, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, args...)
		}
		cmd := exec.Command(filepath.Join(bin, srv.binary), args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		cmd.Stderr = &bytes.Buffer{}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		url := "https://127.0.0.1:" + strconv.Itoa(port) + webhook.Path
		if err := waitUp(url, body); err != nil {
			_ = cmd.Process.Kill()
			b.Fatalf("%s: %v\n%s", srv.name, err, cmd.Stderr)
		}
		results[srv.name] = map[int]result{}
		for _, c := range []int{1, 16, 64} {
			n, lat := load(url, body, c, durations)
			sorted := sortedCopy(lat)
			r := result{float64(n) / durations.Seconds(), percentile(sorted, 0.5), percentile(sorted, 0.99)}
			results[srv.name][c] = r
			fmt.Printf("%-24s concurrency %2d: %7.0f reviews/s, p50 %v, p99 %v\n", srv.name, c, r.perSecond, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
		}
		fmt.Printf("%-24s peak RSS %.1f MiB\n", srv.name, float64(peakRSS(b, cmd.Process.Pid))/(1<<20))
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	for _, c := range []int{1, 16, 64} {
		ours, base := results["opencode-injector serve"][c], results["decode-and-allow"][c]
		fmt.Printf("concurrency %2d: throughput %.2fx decode-and-allow, p99 %v vs %v\n", c, ours.perSecond/base.perSecond, ours.p99.Round(time.Microsecond), base.p99.Round(time.Microsecond))
	}
}

// load sends body to url from c workers sharing a keep-alive transport, as
// the API server does, for d; it returns the count and each latency.
func load(url string, body []byte, c int, d time.Duration) (int, []time.Duration) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: c, MaxConnsPerHost: c} //nolint:gosec // a self-signed test certificate
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				start := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				var out admissionv1.AdmissionReview
				ok := json.NewDecoder(resp.Body).Decode(&out) == nil && out.Response != nil && out.Response.Allowed
				resp.Body.Close()
				if ok && ctx.Err() == nil {
					mine = append(mine, time.Since(start))
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return len(all), all
}

func waitUp(url string, body []byte) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, _ := load(url, body, 1, 200*time.Millisecond)
		if n > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s", url)
		}
	}
}

// peakRSS is the process's high-water mark of resident memory, in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// admissionReview is a CREATE of the first document of manifest.
func admissionReview(b *testing.B, rendered []byte) []byte {
	b.Helper()
	d, err := manifest.FirstDeployment(rendered)
	if err != nil {
		b.Fatal(err)
	}
	d.Namespace = "opencode"
	return testenv.AdmissionReview(b, d)
}

// writeKubeconfig writes cfg (envtest's admin) for a child process.
func writeKubeconfig(b *testing.B, cfg *rest.Config) string {
	b.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(b.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// createWorkspaces stores n labeled Deployments of the flux fixture.
func createWorkspaces(b *testing.B, cfg *rest.Config, root string, n int) {
	b.Helper()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	d, err := manifest.FirstDeployment(fixture(b, root))
	if err != nil {
		b.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cached-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		obj := d.DeepCopy()
		obj.Namespace, obj.Name = ns.Name, d.Name+"-"+strconv.Itoa(i)
		if err := c.Create(context.Background(), obj); err != nil {
			b.Fatal(err)
		}
	}
}
