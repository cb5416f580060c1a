package seed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsersHomeEntriesAreLeftAlone: HOME is the user's. A HOME directory
// they replaced with a symlink (dangling once its pod-local target is gone
// after a restart) or with a plain file does not stop the start: the seed
// says so in one log line, exits 0, and neither follows nor replaces it.
func TestUsersHomeEntriesAreLeftAlone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, path string)
	}{
		{"dangling symlink", func(t *testing.T, path string) {
			symlink(t, filepath.Join(t.TempDir(), "gone"), path)
		}},
		{"plain file", func(t *testing.T, path string) { write(t, path, "the user's\n") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVolume(t)
			v.seed(t).want(t, 0, "cloned")
			cache := v.env["XDG_CACHE_HOME"]
			removeAll(t, cache)
			tc.plant(t, cache)
			before, err := os.Lstat(cache)
			if err != nil {
				t.Fatal(err)
			}
			r := v.seed(t)
			r.want(t, 0, "repository present", cache+" is not a directory")
			if n := strings.Count(r.stdout, cache+" is not a directory"); n != 1 {
				t.Errorf("the log names %s %d times, want one line:\n%s", cache, n, r.stdout)
			}
			after, err := os.Lstat(cache)
			if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("%s changed: %v -> %v (%v)", cache, before, after, err)
			}
			if link, err := os.Readlink(cache); err == nil {
				if _, err := os.Lstat(link); err == nil {
					t.Errorf("the symlink's target %s was created", link)
				}
			}
		})
	}
}
