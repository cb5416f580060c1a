package seed

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// TestPackIndexMatchesGit: the index packWriter writes is byte for byte
// the one `git index-pack` writes, for packs with offset deltas (what a
// clone receives) and with reference deltas, and a damaged pack is refused.
func TestPackIndexMatchesGit(t *testing.T) {
	root := t.TempDir()
	shape := gitserver.Shape{Name: "idx", Files: 200, Fanout: 3, Depth: 2, Commits: 60, Touch: 10}
	if _, err := gitserver.MakeShape(root, "o", shape.Name, shape); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(root, "o", "idx.git")
	for name, args := range map[string][]string{
		"offset deltas":    {"--delta-base-offset"},
		"reference deltas": nil,
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("git", append([]string{"-C", bare, "pack-objects", "--stdout", "--revs", "--all", "-q"}, args...)...)
			cmd.Stdin = strings.NewReader("")
			pack, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			packFile := filepath.Join(dir, "in.pack")
			if err := os.WriteFile(packFile, pack, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("git", "index-pack", "-o", filepath.Join(dir, "git.idx"), packFile).CombinedOutput(); err != nil {
				t.Fatalf("git index-pack: %v: %s", err, out)
			}
			want, _ := os.ReadFile(filepath.Join(dir, "git.idx"))

			dot := filepath.Join(dir, "repo.git")
			got, err := indexWith(dot, pack, 3000) // written in pieces, as the transfer does
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the index differs from git's (%d bytes, git's %d)", len(got), len(want))
			}

			// One flipped byte, in an object or in the checksum: refused,
			// nothing left behind.
			for _, at := range []int{len(pack) / 2, len(pack) - 1} {
				bad := bytes.Clone(pack)
				bad[at] ^= 0xff
				repo := filepath.Join(dir, "bad-"+strconv.Itoa(at)+".git")
				if _, err := indexWith(repo, bad, 1<<20); err == nil {
					t.Errorf("a pack damaged at byte %d of %d was indexed", at, len(pack))
				}
				if left, _ := filepath.Glob(filepath.Join(repo, "objects", "pack", "*")); len(left) != 0 {
					t.Errorf("a refused pack left %v", left)
				}
			}
		})
	}
}

// indexWith writes pack through packWriter into the storage at dot, in
// writes of chunk bytes, and returns the index it wrote.
func indexWith(dot string, pack []byte, chunk int) ([]byte, error) {
	st := filesystem.NewStorage(osfs.New(dot), cache.NewObjectLRU(objectCache))
	w, err := newPackWriter(st, budget{}, nil)
	if err != nil {
		return nil, err
	}
	for r := bytes.NewReader(pack); r.Len() > 0; {
		if _, err = io.CopyN(w, r, int64(chunk)); err != nil && !errors.Is(err, io.EOF) {
			break
		}
		err = nil
	}
	if closeErr := w.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	idx, _ := filepath.Glob(filepath.Join(dot, "objects", "pack", "pack-*.idx"))
	if len(idx) != 1 {
		return nil, errors.New("no index written")
	}
	return os.ReadFile(idx[0])
}
