package seed

import (
	"os"
	"path/filepath"
	"testing"
)

// A seed killed at any step of commit before the rename (the flush, which
// can take long) leaves a staging directory the next start removes: a whole
// clone is never left on the claim for good.
func TestAKillBeforeTheRenameLeavesARemovableStaging(t *testing.T) {
	claim := t.TempDir()
	ws := filepath.Join(claim, "workspace", "github.com", "owner", "repo")
	st, err := newStage(ws)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.clone, "README.md"), []byte("a whole clone\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.flush(); err != nil {
		t.Fatal(err)
	}
	// Killed here: the next start.
	var reported []string
	if err := removeStagingLeftovers(ws, func(f string, a ...any) { reported = append(reported, f) }); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(claim)
	if len(left) != 0 {
		t.Errorf("the claim holds %v after the next start, want it as it was (empty); reported %q", left, reported)
	}
}
