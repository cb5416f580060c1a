package testenv

import (
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Warnings collects the Warning headers the API server returns (admission
// warnings among them).
type Warnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, msg)
}

// All returns the warnings so far.
func (w *Warnings) All() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}

// Take returns the warnings so far and forgets them.
func (w *Warnings) Take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// WarningClient is a client of cfg whose warnings the test can read.
func WarningClient(t testing.TB, cfg *rest.Config) (client.Client, *Warnings) {
	t.Helper()
	w := &Warnings{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = w
	cl, err := client.New(c, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cl, w
}
