package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// The logger serve sets up (zap, production, info level), writing nowhere:
// without SetLogger, controller-runtime keeps every request's log values
// for its first 30 s, which would skew both handlers' figures.
func init() { logf.SetLogger(zap.New(zap.WriteTo(io.Discard))) }

// decodeAndAllow is the least an admission handler does: decode the
// object, allow it. It is the baseline of BenchmarkHandle.
type decodeAndAllow struct{ decoder admission.Decoder }

func (h decodeAndAllow) Handle(_ context.Context, req admission.Request) admission.Response {
	var d appsv1.Deployment
	if err := h.decoder.DecodeRaw(req.Object, &d); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	return admission.Allowed("")
}

// reviewBody is the AdmissionReview v1 the API server POSTs for req.
func reviewBody(t testing.TB, req admission.Request) []byte {
	t.Helper()
	return injectiontest.MustJSON(t, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
}

// discardResponse is an http.ResponseWriter that keeps the last answer.
type discardResponse struct {
	header http.Header
	body   bytes.Buffer
}

func (w *discardResponse) Header() http.Header         { return w.header }
func (w *discardResponse) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *discardResponse) WriteHeader(int)             {}

// serve runs one review through wh as the webhook server does (read and
// decode the AdmissionReview, handle, log, complete and encode the answer).
func serve(wh http.Handler, body []byte, w *discardResponse) {
	w.body.Reset()
	r, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, Path, io.NopCloser(bytes.NewReader(body)))
	r.Header.Set("Content-Type", "application/json")
	wh.ServeHTTP(w, r)
}

// reviewAllowed decodes a review's answer.
func reviewAllowed(t testing.TB, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil || out.Response == nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return out.Response
}

type reviewCase struct {
	name string
	body []byte
}

// benchmarkCases are the reviews of BenchmarkHandle and of the allocation
// check: each fixture's CREATE and a no-op UPDATE of its injected workspace
// (a Flux reconcile).
func benchmarkCases(t testing.TB) []reviewCase {
	var cases []reviewCase
	for _, fixture := range []string{"flux", "ha"} {
		in := injectiontest.ReadDeployment(t, "../test/fixtures/app-template/"+fixture+".rendered.yaml")
		injected, _, err := injection.Mutate(in, nil, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		plain, stored := injectiontest.MustJSON(t, in), injectiontest.MustJSON(t, injected)
		cases = append(cases,
			reviewCase{fixture + "/create", reviewBody(t, request(admissionv1.Create, plain, nil))},
			reviewCase{fixture + "/noop-update", reviewBody(t, request(admissionv1.Update, stored, stored))})
	}
	return cases
}

// BenchmarkHandle is one full admission review as the webhook server runs
// it: controller-runtime's admission.Webhook ServeHTTP around our handler
// (decode, inject, patch, logging, the answer's encoding), for each case,
// beside the same around a decode-and-allow handler, in the same run; the
// ratio is printed with its target. Both webhooks log the same way (the
// quiet LogConstructor serve registers), under the same logger.
func BenchmarkHandle(b *testing.B) {
	for _, tc := range benchmarkCases(b) {
		if ratio, ok := benchmarkBeside(b, tc); ok {
			fmt.Printf("%s: %.2fx (target <= 2x, aim 1.5x): %s\n", tc.name, ratio, verdict(ratio <= 2))
		}
	}
}

// BenchmarkLongList is BenchmarkHandle's review for long lists: a flux
// workspace whose container has 20,000 env entries, the first one an entry
// the injection replaces (HOME), a 577 KB request whose list diff once
// cost 6.1 GB and 33-47 s; and the same with 4,000 entries of names the
// injection sets (GIT_CONFIG_KEY_n), injected and sent again with a
// changed image, so that its record puts them all back (comparing each
// recorded entry with every other was quadratic). No target: the ratio
// shows the review stays in proportion to decoding the request.
func BenchmarkLongList(b *testing.B) {
	in := injectiontest.ReadDeployment(b, "../test/fixtures/app-template/flux.rendered.yaml")
	c := &in.Spec.Template.Spec.Containers[0]
	c.Env = []corev1.EnvVar{{Name: "HOME", Value: "/home/user"}}
	for i := 1; i < 20000; i++ {
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("E%d", i), Value: "v"})
	}
	recorded := in.DeepCopy()
	for i := range 4000 {
		recorded.Spec.Template.Spec.Containers[0].Env = append(recorded.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: fmt.Sprintf("GIT_CONFIG_KEY_%d", i), Value: "v"})
	}
	sent, _ := mustInject(b, recorded)
	sent = sent.DeepCopy()
	sent.Spec.Template.Spec.Containers[0].Image += "-new"
	for _, tc := range []reviewCase{
		{"flux-20000-env/create", reviewBody(b, request(admissionv1.Create, injectiontest.MustJSON(b, in), nil))},
		{"flux-20000-env-4000-recorded/create", reviewBody(b, request(admissionv1.Create, injectiontest.MustJSON(b, sent), nil))},
	} {
		if ratio, ok := benchmarkBeside(b, tc); ok {
			fmt.Printf("%s (%d KB): %.2fx (no target)\n", tc.name, len(tc.body)>>10, ratio)
		}
	}
}

// benchmarkBeside runs tc through our webhook and through the
// decode-and-allow one, and returns our time per review over the
// baseline's (false when -bench filtered either out).
func benchmarkBeside(b *testing.B, tc reviewCase) (float64, bool) {
	ours := &admission.Webhook{Handler: newHandler(), LogConstructor: LogConstructor}
	base := &admission.Webhook{Handler: decodeAndAllow{decoder: admission.NewDecoder(clientgoscheme.Scheme)}, LogConstructor: LogConstructor}
	var perOp [2]float64
	for k, wh := range []*admission.Webhook{ours, base} {
		name := tc.name
		if k == 1 {
			name += "/baseline-decode-and-allow"
		}
		b.Run(name, func(b *testing.B) {
			w := &discardResponse{header: http.Header{}}
			serve(wh, tc.body, w)
			if resp := reviewAllowed(b, w.body.Bytes()); !resp.Allowed {
				b.Fatal(resp.Result.Message)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				serve(wh, tc.body, w)
			}
			perOp[k] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
	}
	if perOp[0] == 0 || perOp[1] == 0 {
		return 0, false
	}
	fmt.Printf("%s: ours %.0f ns/op, decode-and-allow %.0f ns/op\n", tc.name, perOp[0], perOp[1])
	return perOp[0] / perOp[1], true
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}
