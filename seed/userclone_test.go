package seed_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

// TestTheCloneIsTheUsers: whatever the user does with git inside the clone
// the seed made, the next start exits 0 without touching the network, logs
// what it noticed, and leaves every byte of the claim as it was.
func TestTheCloneIsTheUsers(t *testing.T) {
	fork := server.RepoURL("someone", "tools")
	other := filepath.Join(server.Root, "acme", "other.git")
	for _, tc := range []struct {
		name string
		use  func(t *testing.T, ws string)
		logs string // what the restart says besides "repository present"
	}{
		{"sparse checkout", gitDo("sparse-checkout", "init", "--cone"), ""},
		{"worktree config extension", gitDo("config", "extensions.worktreeConfig", "true"), ""},
		{"origin renamed", gitDo("remote", "rename", "origin", "upstream"), "it has no remote origin"},
		{"origin on a fork", gitDo("remote", "set-url", "origin", fork), "origin now points at " + fork},
		{"orphan branch", gitDo("checkout", "--orphan", "x"), ""},
		{"worktree added", gitDo("worktree", "add", "-b", "feature", "../tools-feature"), ""},
		{"split index", func(t *testing.T, ws string) {
			gitDo("config", "core.splitIndex", "true")(t, ws)
			gitDo("update-index", "--split-index")(t, ws)
		}, ""},
		{"index version 4", func(t *testing.T, ws string) {
			gitDo("config", "index.version", "4")(t, ws)
			gitDo("update-index", "--index-version", "4")(t, ws)
		}, ""},
		{"gc aggressive", gitDo("gc", "--aggressive", "-q"), ""},
		{"index deleted", func(t *testing.T, ws string) { remove(t, filepath.Join(ws, ".git", "index")) }, ""},
		{"submodule", gitDo("-c", "protocol.file.allow=always", "submodule", "add", "-q", other, "other"), ""},
		{"rebase in progress", rebaseInConflict, ""},
		{"objects lost", func(t *testing.T, ws string) {
			packs, _ := filepath.Glob(filepath.Join(ws, ".git", "objects", "pack", "pack-*"))
			if len(packs) == 0 {
				t.Fatal("no pack in the clone")
			}
			for _, p := range packs {
				remove(t, p)
			}
		}, ""},
		{"branch lost", func(t *testing.T, ws string) {
			remove(t, filepath.Join(ws, ".git", "refs", "heads", "main"))
			_ = os.Remove(filepath.Join(ws, ".git", "packed-refs"))
		}, ""},
		{".git deleted", func(t *testing.T, ws string) { removeAll(t, filepath.Join(ws, ".git")) },
			"it holds no .git any more (the seed cloned " + server.RepoURL("acme", "tools")},
		{"files deleted and added", func(t *testing.T, ws string) {
			removeAll(t, filepath.Join(ws, "dir1"))
			write(t, filepath.Join(ws, "notes.md"), "unpushed\n")
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVolume(t)
			v.seed(t).want(t, 0, "cloned")
			tc.use(t, v.workspace())
			before, requests := snapshot(t, v.claim), server.Requests()
			r := v.seed(t)
			r.want(t, 0, "repository present at "+v.workspace())
			if tc.logs != "" {
				r.want(t, 0, tc.logs, "left as it is")
			} else if strings.Contains(r.stdout, "left as it is") {
				t.Errorf("the restart noticed something that is not there: %s", r.stdout)
			}
			if n := server.Requests() - requests; n != 0 {
				t.Errorf("the restart made %d requests to the git server", n)
			}
			if after := snapshot(t, v.claim); !reflect.DeepEqual(before, after) {
				t.Errorf("the restart changed the claim: %s", diff(before, after))
			}
		})
	}
}

// TestCloneMadeBeforeTheMarker: a clone from a seed that wrote no marker
// (every clone before it did) counts as the seed's, in any state; the
// restart changes nothing in it and writes the marker beside it, so the
// clone stays the user's once they delete its .git.
func TestCloneMadeBeforeTheMarker(t *testing.T) {
	v := newVolume(t)
	v.seed(t).want(t, 0, "cloned")
	marker := filepath.Join(filepath.Dir(v.workspace()), ".tools.seed-clone")
	remove(t, marker)
	gitDo("config", "extensions.worktreeConfig", "true")(t, v.workspace())
	gitDo("remote", "rename", "origin", "upstream")(t, v.workspace())
	before := snapshot(t, v.workspace())
	v.seed(t).want(t, 0, "repository present", "it has no remote origin")
	if after := snapshot(t, v.workspace()); !reflect.DeepEqual(before, after) {
		t.Errorf("the restart changed the clone: %s", diff(before, after))
	}
	if _, err := os.Lstat(marker); err != nil {
		t.Fatalf("the restart did not mark the clone: %v", err)
	}
	removeAll(t, filepath.Join(v.workspace(), ".git"))
	v.seed(t).want(t, 0, "repository present", "it holds no .git any more")
}

// gitDo runs git with args in the clone, as the user would.
func gitDo(args ...string) func(t *testing.T, ws string) {
	return func(t *testing.T, ws string) {
		t.Helper()
		if err := gitserver.Git(ws, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// rebaseInConflict leaves a rebase stopped on a conflict.
func rebaseInConflict(t *testing.T, ws string) {
	file := filepath.Join(ws, "dir1", "file1.txt")
	commit := func(content string) {
		write(t, file, content)
		gitDo("commit", "-q", "-am", content)(t, ws)
	}
	gitDo("checkout", "-q", "-b", "theirs")(t, ws)
	commit("theirs\n")
	gitDo("checkout", "-q", "main")(t, ws)
	commit("ours\n")
	if err := gitserver.Git(ws, "rebase", "theirs"); err == nil {
		t.Fatal("the rebase did not stop on its conflict")
	}
	if _, err := os.Stat(filepath.Join(ws, ".git", "rebase-merge")); err != nil {
		t.Fatalf("no rebase in progress: %v", err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func removeAll(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

// diff names the paths two snapshots disagree on.
func diff(before, after map[string]string) string {
	var changed []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			changed = append(changed, "-"+p)
		} else if a != b {
			changed = append(changed, "~"+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			changed = append(changed, "+"+p)
		}
	}
	return strings.Join(changed, " ")
}
