package seed_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestUsersHomeEntriesAreLeftAlone: HOME is the user's. A HOME directory
// they replaced with a symlink (dangling once its pod-local target is gone
// after a restart) or with a plain file does not stop the start: the seed
// says so in one log line, exits 0, and neither follows nor replaces it.
// When that directory holds the login's place (XDG_DATA_HOME), the login is
// not seeded and one line names the path and the fix.
func TestUsersHomeEntriesAreLeftAlone(t *testing.T) {
	for _, dir := range []struct {
		env string
		// also is the line the seed must add when dir holds the login's
		// place ("" for none).
		also string
	}{
		{"XDG_CACHE_HOME", ""},
		{"XDG_DATA_HOME", "auth.json: not seeded: %s is not a directory"},
	} {
		for _, tc := range []struct {
			name  string
			plant func(t *testing.T, path string)
		}{
			{"dangling symlink", func(t *testing.T, path string) {
				symlink(t, filepath.Join(t.TempDir(), "gone"), path)
			}},
			{"plain file", func(t *testing.T, path string) { write(t, path, "the user's\n") }},
		} {
			t.Run(dir.env+" "+tc.name, func(t *testing.T) {
				v := newVolume(t)
				write(t, v.env["OPENCODE_SEED_AUTH_SOURCE"], `{"github-copilot":{"refresh":"gho_v1"}}`)
				v.seed(t).want(t, 0, "cloned", "auth.json: seeded")
				path := v.env[dir.env]
				removeAll(t, path)
				tc.plant(t, path)
				before, err := os.Lstat(path)
				if err != nil {
					t.Fatal(err)
				}
				r := v.seed(t)
				r.want(t, 0, "repository present", path+" is not a directory")
				if n := strings.Count(r.stdout, path+" is not a directory (yours"); n != 1 {
					t.Errorf("the log names %s %d times, want one line:\n%s", path, n, r.stdout)
				}
				if dir.also != "" {
					also := strings.Replace(dir.also, "%s", path, 1)
					if n := strings.Count(r.stdout, also); n != 1 || !strings.Contains(r.stdout, "restart the pod") {
						t.Errorf("want one line %q with the fix:\n%s", also, r.stdout)
					}
					if _, err := os.Lstat(v.env["OPENCODE_SEED_AUTH_TARGET"]); err == nil {
						t.Error("auth.json was seeded through the user's entry")
					}
				}
				after, err := os.Lstat(path)
				if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
					t.Errorf("%s changed: %v -> %v (%v)", path, before, after, err)
				}
				if link, err := os.Readlink(path); err == nil {
					if _, err := os.Lstat(link); err == nil {
						t.Errorf("the symlink's target %s was created", link)
					}
				}
			})
		}
	}
}

// TestUsersDanglingLoginSymlinkIsLeftAlone: an auth.json the user made a
// symlink whose target is gone is theirs too: the Secret's login is not
// written over it, the start goes on, and one line says what to do.
// TestUsersEntryAtTheLoginsPlaceIsLeftAlone: a directory or a symlink loop
// where auth.json goes is the user's doing; the pod starts, the entry stays.
func TestUsersEntryAtTheLoginsPlaceIsLeftAlone(t *testing.T) {
	for name, tc := range map[string]struct {
		make func(t *testing.T, target string)
		want string
	}{
		"a directory": {func(t *testing.T, target string) {
			if err := os.MkdirAll(filepath.Join(target, "inside"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		"a symlink loop": {func(t *testing.T, target string) { symlink(t, target, target) }, "is a symlink the seed cannot follow"},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVolume(t)
			write(t, v.env["OPENCODE_SEED_AUTH_SOURCE"], `{"github-copilot":{"refresh":"gho_v1"}}`)
			target := v.env["OPENCODE_SEED_AUTH_TARGET"]
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				t.Fatal(err)
			}
			tc.make(t, target)
			home := filepath.Dir(target)
			before := snapshot(t, home)
			v.seed(t).want(t, 0, "cloned", "auth.json: not seeded: "+target+" "+tc.want)
			if after := snapshot(t, home); !reflect.DeepEqual(before, after) {
				t.Errorf("the login's directory changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestUsersDanglingLoginSymlinkIsLeftAlone(t *testing.T) {
	v := newVolume(t)
	write(t, v.env["OPENCODE_SEED_AUTH_SOURCE"], `{"github-copilot":{"refresh":"gho_v1"}}`)
	target := v.env["OPENCODE_SEED_AUTH_TARGET"]
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	symlink(t, gone, target)
	r := v.seed(t)
	r.want(t, 0, "cloned", "auth.json: not seeded: "+target+" is a symlink whose target is gone")
	if link, err := os.Readlink(target); err != nil || link != gone {
		t.Errorf("%s is now %q (%v), want the user's symlink to %s", target, link, err, gone)
	}
	if _, err := os.Lstat(gone); err == nil {
		t.Errorf("the symlink's target %s was created", gone)
	}
}
