package seed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMarkerIsNotFollowed: the marker and the clone's config are files the
// user may replace. A symlink to the Secret's token must not put the token
// in the log (run checks every output for it), a FIFO must not hang the
// start, and what is not a repository URL is not printed.
func TestMarkerIsNotFollowed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, v *volume, marker string)
		logs  string
	}{
		{"marker symlink to the token", func(t *testing.T, v *volume, marker string) {
			symlink(t, secretFile(t, v), marker)
		}, "marker " + "%s is present"},
		{"marker fifo", func(t *testing.T, v *volume, marker string) {
			if err := unix.Mkfifo(marker, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "marker %s is present"},
		{"marker not a URL", func(t *testing.T, v *volume, marker string) {
			write(t, marker, "x\x1b[2Jnot a repo\n")
		}, "marker %s is present"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVolume(t)
			v.seed(t).want(t, 0, "cloned")
			marker := filepath.Join(filepath.Dir(v.workspace()), ".tools.seed-clone")
			remove(t, marker)
			removeAll(t, filepath.Join(v.workspace(), ".git"))
			tc.plant(t, v, marker)
			r := v.seed(t)
			r.want(t, 0, "it holds no .git any more", strings.ReplaceAll(tc.logs, "%s", marker))
			if strings.Contains(r.stdout+r.stderr, "not a repo") {
				t.Errorf("the marker's content reached the log: %s", r.stdout)
			}
		})
	}
	t.Run("git config symlink to the token", func(t *testing.T) {
		v := newVolume(t)
		v.seed(t).want(t, 0, "cloned")
		config := filepath.Join(v.workspace(), ".git", "config")
		remove(t, config)
		symlink(t, secretFile(t, v), config)
		v.seed(t).want(t, 0, "repository present")
	})
}

// TestSymlinkedWorkspace: a symlink at the clone path to a directory is the
// user's; the rules apply to the directory it leads to.
func TestSymlinkedWorkspace(t *testing.T) {
	v := newVolume(t)
	v.seed(t).want(t, 0, "cloned")
	moved := filepath.Join(v.claim, "elsewhere")
	if err := os.Rename(v.workspace(), moved); err != nil {
		t.Fatal(err)
	}
	symlink(t, moved, v.workspace())
	v.seed(t).want(t, 0, "repository present at "+v.workspace())
	removeAll(t, filepath.Join(moved, ".git"))
	v.seed(t).want(t, 0, "it holds no .git any more")

	empty := filepath.Join(v.claim, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	remove(t, v.workspace())
	symlink(t, empty, v.workspace())
	v.seed(t).want(t, 7, "is a symlink to an empty directory")
	remove(t, v.workspace())
	symlink(t, filepath.Join(moved, "dir1", "file1.txt"), v.workspace())
	v.seed(t).want(t, 7, "is a symlink to a file")
}

// secretFile is a file in the Secret's volume that holds the token.
func secretFile(t *testing.T, v *volume) string {
	t.Helper()
	p := filepath.Join(v.secret, "token")
	write(t, p, token+"\n")
	return p
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
