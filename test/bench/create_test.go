package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gomodules.xyz/jsonpatch/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

const creates = 200

// BenchmarkDeploymentCreate creates the flux fixture 200 times on a real API
// server with no webhook, with a minimal mutating webhook (it adds one
// annotation) and with opencode-injector, in the same run, and prints the
// latency each create gains (p50, p99) and how many times per create the
// API server ran its mutating webhook plugin and called the webhook (its
// own metrics; reinvocationPolicy IfNeeded runs the plugin again after any
// mutation). Run it once: -benchtime 1x.
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
	d, err := manifest.FirstDeployment(fixture(b, root))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The minimal mutating webhook, on the same library.
	minimalPort := testenv.FreePort(b)
	minimal := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: minimalPort, CertDir: certDir})
	minimal.Register("/mutate", &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Patched("", jsonpatch.NewOperation("add", "/metadata/annotations/bench.example~1mutated", "true"))
	})})
	go func() { _ = minimal.Start(ctx) }()
	// opencode-injector, in process.
	oursPort := testenv.FreePort(b)
	mgr, err := app.NewManager(cfg, benchSettings, app.ServerOptions{Host: "127.0.0.1", Port: oursPort, CertDir: certDir, MetricsBindAddress: "0", HealthProbeBindAddress: "0"})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	deployed, err := testenv.WebhookConfiguration(root)
	if err != nil {
		b.Fatal(err)
	}
	type phase struct {
		name    string
		webhook *admissionregistrationv1.MutatingWebhookConfiguration
		applied func(*appsv1.Deployment) bool
	}
	minimalCfg := deployed.DeepCopy()
	minimalCfg.Name = "bench-minimal"
	minimalCfg.Webhooks[0].Name = "minimal.bench.example"
	minimalCfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:" + strconv.Itoa(minimalPort) + "/mutate"), CABundle: caPEM}
	oursCfg := deployed.DeepCopy()
	oursCfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:" + strconv.Itoa(oursPort) + webhook.Path), CABundle: caPEM}
	phases := []phase{
		{"no webhook", nil, func(*appsv1.Deployment) bool { return true }},
		{"minimal mutating webhook", minimalCfg, func(d *appsv1.Deployment) bool { return d.Annotations["bench.example/mutated"] == "true" }},
		{"opencode-injector", oursCfg, injection.IsInjected},
	}
	var baseP50, minimalP50 time.Duration
	for _, p := range phases {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
		if err := c.Create(ctx, ns); err != nil {
			b.Fatal(err)
		}
		if p.webhook != nil {
			if err := c.Create(ctx, p.webhook); err != nil {
				b.Fatal(err)
			}
			if err := waitApplied(ctx, c, d, ns.Name, p.applied); err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
		}
		before := apiMetrics(b, cfg)
		lat := make([]time.Duration, 0, creates)
		for i := range creates {
			obj := d.DeepCopy()
			obj.Namespace, obj.Name = ns.Name, d.Name+"-"+strconv.Itoa(i)
			start := time.Now()
			if err := c.Create(ctx, obj); err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
			lat = append(lat, time.Since(start))
			if i == 0 && !p.applied(obj) {
				b.Fatalf("%s: the webhook did not apply", p.name)
			}
		}
		after := apiMetrics(b, cfg)
		sorted := sortedCopy(lat)
		p50, p99 := percentile(sorted, 0.5), percentile(sorted, 0.99)
		line := fmt.Sprintf("%-26s create p50 %v, p99 %v", p.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
		switch p.name {
		case "no webhook":
			baseP50 = p50
		default:
			name := p.webhook.Webhooks[0].Name
			plugin := after.plugin - before.plugin
			calls := after.calls[name] - before.calls[name]
			line += fmt.Sprintf("; gains p50 %v; per create: mutating plugin ran %.2f times, webhook called %.2f times",
				(p50 - baseP50).Round(time.Microsecond), plugin/creates, calls/creates)
			if p.name == "minimal mutating webhook" {
				minimalP50 = p50
			} else {
				line += fmt.Sprintf("; gain %.2fx the minimal webhook's", float64(p50-baseP50)/float64(minimalP50-baseP50))
			}
			if err := c.Delete(ctx, p.webhook); err != nil {
				b.Fatal(err)
			}
		}
		fmt.Println(line)
	}
}

// waitApplied waits until a dry-run create shows the webhook applied.
func waitApplied(ctx context.Context, c client.Client, d *appsv1.Deployment, ns string, applied func(*appsv1.Deployment) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := d.DeepCopy()
		probe.Namespace = ns
		if err := c.Create(ctx, probe, client.DryRunAll); err == nil && applied(probe) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook was not called within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// admissionCounts are the API server's counts of mutating plugin runs and
// of calls per webhook, for CREATE.
type admissionCounts struct {
	plugin float64
	calls  map[string]float64
}

func apiMetrics(b *testing.B, cfg *rest.Config) admissionCounts {
	b.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	counts := admissionCounts{calls: map[string]float64{}}
	for _, m := range families["apiserver_admission_controller_admission_duration_seconds"].GetMetric() {
		l := labels(m.GetLabel())
		if l["name"] == "MutatingAdmissionWebhook" && l["operation"] == "CREATE" && l["type"] == "admit" {
			counts.plugin += float64(m.GetHistogram().GetSampleCount())
		}
	}
	for _, m := range families["apiserver_admission_webhook_admission_duration_seconds"].GetMetric() {
		l := labels(m.GetLabel())
		if l["operation"] == "CREATE" && l["type"] == "admit" {
			counts.calls[l["name"]] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return counts
}

func labels[L interface {
	GetName() string
	GetValue() string
}](pairs []L) map[string]string {
	m := map[string]string{}
	for _, p := range pairs {
		m[p.GetName()] = p.GetValue()
	}
	return m
}
