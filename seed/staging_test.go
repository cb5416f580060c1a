package seed_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOnlyTheSeedsLeftoversAreRemoved: a start removes staging directories
// that have the seed's sentinel beside them, a sentinel left alone, and the
// marker's temporary file, and nothing else: not a user's directory that merely looks like one, and
// nothing above the claim.
func TestOnlyTheSeedsLeftoversAreRemoved(t *testing.T) {
	v := newVolume(t)
	v.seed(t).want(t, 0, "cloned")
	const sentinel = ".staging"
	for _, p := range []string{v.workspace(), v.claim} {
		if left, _ := filepath.Glob(filepath.Join(p, "*", "*"+sentinel)); len(left) != 0 {
			t.Errorf("the clone left its staging sentinel: %v", left)
		}
	}
	owner := filepath.Dir(v.workspace())
	hostDir := filepath.Dir(owner)
	kept := []string{
		filepath.Join(v.claim, ".notes.seed-2025-backup", "notes.md"), // not the exact name
		filepath.Join(v.claim, ".notes.seed-2025", "notes.md"),        // the name, no sentinel
		filepath.Join(v.root, ".above.seed-7", "x"),                   // above the claim...
		filepath.Join(v.root, ".above.seed-7"+sentinel),               // ...with its sentinel
		filepath.Join(v.claim, ".notes.seed-2025-backup"+sentinel),    // not a staging name
		filepath.Join(owner, ".other.seed-clone.tmp-1"),               // another clone's
		filepath.Join(hostDir, "..tools.seed-clone.tmp-5"),            // the marker's name, not beside the clone
	}
	removed := []string{
		filepath.Join(v.claim, ".workspace.seed-42", "x"),
		filepath.Join(v.claim, ".workspace.seed-42"+sentinel),
		filepath.Join(owner, ".tools.seed-9", "x"),
		filepath.Join(owner, ".tools.seed-9"+sentinel),
		filepath.Join(owner, ".tools.seed-3"+sentinel),     // alone: a kill after the rename
		filepath.Join(owner, "..tools.seed-clone.tmp-123"), // the marker's, left by a kill
	}
	for _, p := range append(append([]string{}, kept...), removed...) {
		mkdir(t, filepath.Dir(p))
		write(t, p, "x\n")
	}
	v.seed(t).want(t, 0, "repository present", "left by an interrupted clone")
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("the start removed %s: %v", p, err)
		}
	}
	for _, p := range removed {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the start left %s", p)
		}
	}
}
