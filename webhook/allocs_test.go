package webhook

import (
	"net/http"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// reviewAllocBound is a generous bound on the allocations of one review
// through the webhook server, about twice the most BenchmarkHandle measured
// (392 on the flux CREATE, 419 on the ha CREATE, 543 on either no-op
// UPDATE, on 2026-12-05; pooled buffers emptied by a GC add a few): a
// change that makes a review several times costlier fails here, in
// `make test`, without timing anything.
const reviewAllocBound = 1100

func TestReviewAllocations(t *testing.T) {
	wh := &admission.Webhook{Handler: newHandler(), LogConstructor: LogConstructor}
	for _, tc := range benchmarkCases(t) {
		w := &discardResponse{header: http.Header{}}
		serve(wh, tc.body, w)
		if resp := reviewAllowed(t, w.body.Bytes()); !resp.Allowed || len(resp.Patch) == 0 && strings.HasSuffix(tc.name, "/create") {
			t.Fatalf("%s: want an allowed review with a patch on create, got %+v", tc.name, resp)
		}
		allocs := testing.AllocsPerRun(20, func() { serve(wh, tc.body, w) })
		t.Logf("%s: %.0f allocations per review (bound %d)", tc.name, allocs, reviewAllocBound)
		if allocs > reviewAllocBound {
			t.Errorf("%s: %.0f allocations per review, over the bound of %d: profile BenchmarkHandle (-memprofile) to find what grew", tc.name, allocs, reviewAllocBound)
		}
	}
}
