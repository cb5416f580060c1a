package webhook

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

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

// BenchmarkHandle is one full admission review as the webhook server runs
// it (decode, inject, patch), for each fixture, on CREATE and on a no-op
// UPDATE of the injected workspace (a Flux reconcile), each beside a
// decode-and-allow handler on the same request in the same run; the ratio
// is printed.
func BenchmarkHandle(b *testing.B) {
	h := newHandler()
	base := decodeAndAllow{decoder: admission.NewDecoder(clientgoscheme.Scheme)}
	for _, fixture := range []string{"flux", "ha"} {
		in := injectiontest.ReadDeployment(b, "../test/fixtures/app-template/"+fixture+".rendered.yaml")
		injected, _, err := injection.Mutate(in, nil, testSettings())
		if err != nil {
			b.Fatal(err)
		}
		plain, stored := injectiontest.MustJSON(b, in), injectiontest.MustJSON(b, injected)
		for _, tc := range []struct {
			name string
			req  admission.Request
		}{
			{"create", request(admissionv1.Create, plain, nil)},
			{"noop-update", request(admissionv1.Update, stored, stored)},
		} {
			var perOp [2]float64
			for k, handler := range []admission.Handler{h, base} {
				name := fixture + "/" + tc.name
				if k == 1 {
					name += "/baseline-decode-and-allow"
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; i < b.N; i++ {
						if resp := handler.Handle(context.Background(), tc.req); !resp.Allowed {
							b.Fatal(resp.Result.Message)
						}
					}
					perOp[k] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				})
			}
			if perOp[0] > 0 && perOp[1] > 0 { // both ran (not filtered out by -bench)
				fmt.Printf("%s/%s: Handle %.0f ns/op, decode-and-allow %.0f ns/op: %.2fx\n", fixture, tc.name, perOp[0], perOp[1], perOp[0]/perOp[1])
			}
		}
	}
}
