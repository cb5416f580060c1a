package seed

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

// TestDeltaWalkHoldsWithinTheBudget: on the deepest delta trees git makes
// (60 versions of a 4 MiB file, chains up to 250 long), resolve's walk
// never holds more content than the budget allows, however long the chain
// it keeps. In process: it needs no root and no cgroup.
func TestDeltaWalkHoldsWithinTheBudget(t *testing.T) {
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "opencode-injector", "seed-shapes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	shape := gitserver.Shape{Name: "t-delta-tree", LargeFile: 4 << 20, Versions: 60, Files: 3, Fanout: 1, Depth: 1,
		Repack: []string{"-adfq", "--window=250", "--depth=250"}}
	if _, err := gitserver.MakeShapeCached(dir, root, "shapes", shape.Name, shape); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(root, "shapes", shape.Name+".git", "objects", "pack", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("want one pack, found %v", packs)
	}
	f, err := os.Open(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	scan := &packScan{budget: newBudget(40 << 20)}
	if err := scan.run(bufio.NewReader(f)); err != nil {
		t.Fatal(err)
	}
	if err := scan.resolve(f, fi.Size()); err != nil {
		t.Fatal(err)
	}
	t.Logf("peak held %.1f MiB, budget %.1f MiB", float64(scan.peakHeld)/(1<<20), float64(scan.budget.max)/(1<<20))
	if scan.peakHeld < shape.LargeFile {
		t.Fatalf("the walk held %d bytes, less than one version: it did not run", scan.peakHeld)
	}
	if scan.peakHeld > scan.budget.max {
		t.Errorf("the walk held %d bytes, over the budget of %d", scan.peakHeld, scan.budget.max)
	}
}
