package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// loadDuration is how long each concurrency level runs (BENCH_DURATION).
func loadDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BENCH_DURATION")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Second
}

// BenchmarkServerTLS sends what the API server sends (keep-alive HTTPS
// POSTs of AdmissionReview v1, a CREATE of the flux fixture) at
// concurrency 16 to `opencode-injector serve` (200 injected workspaces in
// the cluster), to a decode-and-allow server and to a patch-echo server
// (it decodes the object and answers our exact patch, computed once), in
// interleaved rounds, and prints throughput and p99 of each round, then
// ours against both baselines over all rounds with the targets. Run it
// once: -benchtime 1x.
func BenchmarkServerTLS(b *testing.B) {
	servers, body := serverSetup(b)
	d := loadDuration()
	const concurrency, rounds = 16, 3
	names := []string{ours, decodeAndAllow, patchEcho}
	running := map[string]*serverProcess{}
	for _, name := range names {
		p := servers.start(b, name)
		defer p.stop()
		p.waitUp(b, body)
		running[name] = p
	}
	samePatch(b, running[ours].url, running[patchEcho].url, body)
	all := map[string][]time.Duration{}
	for round := 1; round <= rounds; round++ {
		for _, name := range names {
			n, lat := load(running[name].url, body, concurrency, d)
			all[name] = append(all[name], lat...)
			fmt.Printf("round %d %-24s concurrency %d: %7.0f reviews/s, p50 %v, p99 %v\n", round, name, concurrency,
				float64(n)/d.Seconds(), percentile(sortedCopy(lat), 0.5).Round(time.Microsecond), percentile(sortedCopy(lat), 0.99).Round(time.Microsecond))
		}
	}
	total := d.Seconds() * rounds
	for _, name := range names {
		sorted := sortedCopy(all[name])
		fmt.Printf("%d rounds %-24s %7.0f reviews/s, p50 %v, p99 %v\n", rounds, name, float64(len(sorted))/total,
			percentile(sorted, 0.5).Round(time.Microsecond), percentile(sorted, 0.99).Round(time.Microsecond))
	}
	p99 := func(name string) time.Duration { return percentile(sortedCopy(all[name]), 0.99) }
	throughput := func(name string) float64 { return float64(len(all[name])) }
	fmt.Printf("concurrency %d: throughput %.2fx decode-and-allow (no target: it answers no patch)\n", concurrency, throughput(ours)/throughput(decodeAndAllow))
	ratio := throughput(ours) / throughput(patchEcho)
	fmt.Printf("concurrency %d: throughput %.2fx patch-echo (target >= 0.85x): %s\n", concurrency, ratio, verdict(ratio >= 0.85))
	ratio = float64(p99(ours)) / float64(p99(patchEcho))
	fmt.Printf("concurrency %d: p99 %v vs patch-echo's %v: %.2fx (target <= 1.2x): %s\n", concurrency,
		p99(ours).Round(time.Microsecond), p99(patchEcho).Round(time.Microsecond), ratio, verdict(ratio <= 1.2))
}

// serverSetup starts an API server holding 200 injected workspaces,
// builds the servers, and returns them with the review they are sent.
func serverSetup(b *testing.B) (benchServers, []byte) {
	b.Helper()
	_, cfg, root := startAPIServer(b)
	injector, baselines := serverBinaries(b, root)
	certDir, _ := servingCert(b)
	body := admissionReview(b, fixture(b, root))
	review := filepath.Join(b.TempDir(), "review.json")
	if err := os.WriteFile(review, body, 0o600); err != nil {
		b.Fatal(err)
	}
	createWorkspaces(b, cfg, root, workspaces)
	return benchServers{injector: injector, baselines: baselines, kubeconfig: writeKubeconfig(b, cfg), certDir: certDir, review: review}, body
}

// samePatch fails unless both servers answer body with the same patch.
func samePatch(b *testing.B, url, echoURL string, body []byte) {
	b.Helper()
	a, e := answer(b, url, body), answer(b, echoURL, body)
	if len(a.Patch) == 0 || !bytes.Equal(a.Patch, e.Patch) {
		b.Fatalf("the patch-echo server answers another patch than ours (%d bytes, ours %d)", len(e.Patch), len(a.Patch))
	}
}

func answer(b *testing.B, url string, body []byte) *admissionv1.AdmissionResponse {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test certificate
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		b.Fatalf("%s: no AdmissionReview response: %v", url, err)
	}
	return out.Response
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

// workspaces is how many the server benchmarks' cluster holds.
const workspaces = 200

// createWorkspaces stores n injected Deployments of the flux fixture.
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
		obj, _, err := injection.Mutate(obj, nil, benchSettings)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Create(context.Background(), obj); err != nil {
			b.Fatal(err)
		}
	}
}
