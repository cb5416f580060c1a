package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

// phaseLabel selects, on a namespace, the one webhook its creates go
// through: every webhook stays registered and the rounds interleave.
const phaseLabel = "bench.example/phase"

// createPhase is one way of creating the fixture.
type createPhase struct {
	name, label string
	url         string // the webhook's; empty: none
	storage     bool   // the Deployment asks for a claim (storage annotation)
	applied     func(*appsv1.Deployment) bool
}

// BenchmarkDeploymentCreate creates the flux fixture on a real API server
// with no webhook, through a minimal mutating webhook (it adds one
// annotation), through a patch-echo webhook (it answers our exact patch,
// computed before the run) and through opencode-injector, in interleaved
// rounds; then the patch-echo webhook and ours again on a Deployment that
// asks for storage (our review then reads the claim and asks a
// SubjectAccessReview of the API server). From the API server's own
// metrics it prints, per phase and round, the webhook call time's mean
// (its histogram's sum over count: the buckets are coarse) and the API
// server's CPU seconds per create, and ours against the echo's over all
// rounds with the target. Run it once: -benchtime 1x.
func BenchmarkDeploymentCreate(b *testing.B) {
	_, cfg, root := startAPIServer(b)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	certDir, caPEM := servingCert(b)
	fixtureDeployment, err := manifest.FirstDeployment(fixture(b, root))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	creates, rounds := envInt("BENCH_CREATES", 200), 3 // per phase and round

	// The minimal and the patch-echo webhooks, on the same library and TLS
	// setup as ours; ours in process.
	port := testenv.FreePort(b)
	baselines := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir, TLSOpts: app.TLSOptions(false)})
	baselines.Register("/mutate", &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Patched("", jsonpatch.NewOperation("add", "/metadata/annotations/bench.example~1mutated", "true"))
	}), LogConstructor: webhook.LogConstructor})
	echo := &echoPatches{decoder: admission.NewDecoder(scheme), patches: map[string][]byte{}}
	baselines.Register("/echo", &admission.Webhook{Handler: echo, LogConstructor: webhook.LogConstructor})
	go func() { _ = baselines.Start(ctx) }()
	oursPort := testenv.FreePort(b)
	mgr, err := app.NewManager(cfg, benchSettings, app.ServerOptions{Host: "127.0.0.1", Port: oursPort, CertDir: certDir, MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	baseURL := "https://127.0.0.1:" + strconv.Itoa(port)
	oursURL := "https://127.0.0.1:" + strconv.Itoa(oursPort) + webhook.Path
	mutated := func(d *appsv1.Deployment) bool { return d.Annotations["bench.example/mutated"] == "true" }
	phases := []createPhase{
		{name: "no webhook", label: "none", applied: func(*appsv1.Deployment) bool { return true }},
		{name: "minimal mutating webhook", label: "minimal", url: baseURL + "/mutate", applied: mutated},
		{name: "patch-echo webhook", label: "echo", url: baseURL + "/echo", applied: injection.IsInjected},
		{name: "opencode-injector", label: "ours", url: oursURL, applied: injection.IsInjected},
		{name: "patch-echo, storage", label: "echo-storage", url: baseURL + "/echo", storage: true, applied: injection.IsInjected},
		{name: "opencode-injector, storage", label: "ours-storage", url: oursURL, storage: true, applied: injection.IsInjected},
	}
	object := func(p createPhase, ns, name string) *appsv1.Deployment {
		d := fixtureDeployment.DeepCopy()
		d.Namespace, d.Name = ns, name
		if p.storage {
			d.Annotations[contract.AnnotationStorage] = "1Gi"
		}
		return d
	}
	// Each round's namespace of each phase, made first: the echo's patches
	// are computed for every Deployment it will see, before the run.
	namespaces := make([]map[string]string, rounds)
	for r := range namespaces {
		namespaces[r] = map[string]string{}
		for _, p := range phases {
			namespaces[r][p.label] = createNamespace(ctx, b, c, map[string]string{phaseLabel: p.label})
		}
	}
	defaults := createNamespace(ctx, b, c, nil)
	for _, p := range phases {
		if p.url != baseURL+"/echo" {
			continue
		}
		for r := range rounds {
			for i := -1; i < creates; i++ {
				echo.precompute(ctx, b, c, object(p, namespaces[r][p.label], createdName(fixtureDeployment, i)), defaults)
			}
		}
	}
	deployed, err := testenv.WebhookConfiguration(root)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range phases {
		if p.url == "" {
			continue
		}
		w := deployed.DeepCopy()
		w.Name = "bench-" + p.label
		w.Webhooks[0].Name = p.label + ".bench.example"
		w.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To(p.url), CABundle: caPEM}
		sel := ptr.Deref(w.Webhooks[0].NamespaceSelector, metav1.LabelSelector{})
		sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: phaseLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{p.label}})
		w.Webhooks[0].NamespaceSelector = &sel
		if err := c.Create(ctx, w); err != nil {
			b.Fatal(err)
		}
		if err := waitApplied(ctx, c, object(p, namespaces[0][p.label], createdName(fixtureDeployment, -1)), p.applied); err != nil {
			b.Fatalf("%s: %v", p.name, err)
		}
	}

	results := map[string][]phaseResult{}
	for r := range rounds {
		for _, p := range phases {
			ns := namespaces[r][p.label]
			before := apiMetrics(b, cfg)
			lat := make([]time.Duration, 0, creates)
			for i := range creates {
				obj := object(p, ns, createdName(fixtureDeployment, i))
				start := time.Now()
				if err := c.Create(ctx, obj); err != nil {
					b.Fatalf("%s: %v", p.name, err)
				}
				lat = append(lat, time.Since(start))
				if i == 0 && !p.applied(obj) {
					b.Fatalf("%s: the webhook did not apply", p.name)
				}
			}
			res := phaseResult{creates: creates, latencies: lat, cpu: apiMetrics(b, cfg).cpu - before.cpu}
			res.callSum, res.calls = callTime(before, apiMetrics(b, cfg), p.label+".bench.example")
			results[p.label] = append(results[p.label], res)
			fmt.Printf("round %d %-28s %s\n", r+1, p.name, res)
		}
	}
	sameObjects(ctx, b, c, namespaces[0]["echo"], namespaces[0]["ours"], createdName(fixtureDeployment, 0))
	reportCreates(phases, results)
}

func createdName(d *appsv1.Deployment, i int) string {
	if i < 0 {
		return d.Name + "-probe"
	}
	return d.Name + "-" + strconv.Itoa(i)
}

func createNamespace(ctx context.Context, b *testing.B, c client.Client, labels map[string]string) string {
	b.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-", Labels: labels}}
	if err := c.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	return ns.Name
}

// sameObjects fails unless the echo's and our Deployment of one name were
// stored alike: the echo answered our exact patch.
func sameObjects(ctx context.Context, b *testing.B, c client.Client, echoNS, oursNS, name string) {
	b.Helper()
	var echoed, injected appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: echoNS, Name: name}, &echoed); err != nil {
		b.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: oursNS, Name: name}, &injected); err != nil {
		b.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(echoed.Spec, injected.Spec) || !equality.Semantic.DeepEqual(echoed.Annotations, injected.Annotations) {
		b.Fatal("the patch-echo webhook stored another Deployment than ours: its patch is not ours")
	}
}

// waitApplied waits until a dry-run create of d shows the webhook applied.
func waitApplied(ctx context.Context, c client.Client, d *appsv1.Deployment, applied func(*appsv1.Deployment) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := d.DeepCopy()
		if err := c.Create(ctx, probe, client.DryRunAll); err == nil && applied(probe) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook was not called within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
