// Package rootonly is the one rule for tests that need root or a cgroup v1
// memory controller: where those are missing they are skipped with the
// reason, and only a CI that promises them (CI=true outside GitHub Actions,
// whose hosted runners are not root) turns the skip into a failure.
package rootonly

import (
	"fmt"
	"os"
	"testing"
)

// Required reports whether a missing root or cgroup v1 fails the run.
func Required() bool {
	return os.Getenv("CI") == "true" && os.Getenv("GITHUB_ACTIONS") != "true"
}

// Unavailable skips t with why, printed on stderr too so a run without -v
// says what it left out; it fails t instead when Required.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s: CI=true outside GitHub Actions requires this test", why)
	}
	fmt.Fprintf(os.Stderr, "%s: skipped: %s\n", t.Name(), why)
	t.Skip(why)
}
