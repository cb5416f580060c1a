package seed

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// On the image's empty base there is no system bundle: git's bundle then
// holds the roots compiled into the binary, the ones the seed falls back on.
func TestSystemRootsFallBackToTheCompiledInRoots(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "none.pem")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", empty)
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	unconstrained := 0
	for r := range bundle.Roots() {
		if r.Constraint == nil {
			unconstrained++
		}
	}
	if got := len(systemRoots()); got != unconstrained || got < 100 {
		t.Errorf("%d roots without a system bundle, want the %d compiled-in ones without constraints", got, unconstrained)
	}
}
