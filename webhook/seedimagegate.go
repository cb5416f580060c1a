package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// SeedImageGate answers admission reviews with the Handler once the seed
// image is known, and with an error before, except for a way out: removing
// the label and updating a Deployment being deleted need no seed image and
// always pass.
type SeedImageGate struct {
	h      atomic.Pointer[Handler]
	wayOut *Handler // Settings without a seed image, for the ways out only
	mu     sync.Mutex
	err    error
}

// NewSeedImageGate is a gate that answers with wayOut (Settings without a
// seed image) until Set gives it the Handler.
func NewSeedImageGate(wayOut *Handler) *SeedImageGate { return &SeedImageGate{wayOut: wayOut} }

var _ admission.Handler = (*SeedImageGate)(nil)

// Set makes h answer every review from now on.
func (g *SeedImageGate) Set(h *Handler) { g.h.Store(h) }

// SetError says why the seed image is not known yet, for Ready.
func (g *SeedImageGate) SetError(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
}

// Ready is the readiness check: ready once the seed image is known.
func (g *SeedImageGate) Ready(*http.Request) error {
	if g.h.Load() != nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Errorf("no seed image: %w", g.err)
}

// Handle implements admission.Handler.
func (g *SeedImageGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	if h := g.h.Load(); h != nil {
		return h.Handle(ctx, req)
	}
	// The injection refuses only what would need the seed image; say why it is
	// not known.
	resp := g.wayOut.Handle(ctx, req)
	if resp.Result != nil && resp.Result.Code == http.StatusServiceUnavailable {
		resp.Result.Message += ": " + g.Ready(nil).Error()
	}
	return resp
}
