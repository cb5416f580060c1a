package seed_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

// TestCheckoutMatchesGit clones a repository holding every kind of tree
// entry with the seed and with `git clone`, under a umask of 002 so that
// permissions fixed in code would show, and wants the same work tree
// (files, contents, modes, executable bits, symlinks, empty submodule
// directories), the same index, and one git finds clean by its stat data
// alone (`git diff-files` does not read a file whose stat matches).
func TestCheckoutMatchesGit(t *testing.T) {
	const owner, name = "checkout", "kinds"
	if err := makeKindsRepo(filepath.Join(server.Root, owner, name+".git")); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o002)
	defer syscall.Umask(old)

	v := newVolume(t)
	v.env["OPENCODE_SEED_REPO"] = server.RepoURL(owner, name)
	v.seed(t).want(t, 0, "cloned")
	byGit := filepath.Join(v.root, "git-clone")
	if out, err := gitClone(server.RepoURL(owner, name), byGit).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}

	seeded, cloned := workTree(t, v.workspace()), workTree(t, byGit)
	if len(seeded) < 300 {
		t.Fatalf("the seed's work tree holds %d entries, want the fixture's 300 and more", len(seeded))
	}
	if !reflect.DeepEqual(seeded, cloned) {
		for p := range merged(seeded, cloned) {
			if seeded[p] != cloned[p] {
				t.Errorf("%s: seed %q, git %q", p, abbrev(seeded[p]), abbrev(cloned[p]))
			}
		}
	}
	if got, want := gitOut(t, v.workspace(), "ls-files", "-s"), gitOut(t, byGit, "ls-files", "-s"); got != want {
		t.Errorf("index (git ls-files -s):\nseed:\n%s\ngit:\n%s", got, want)
	}
	if out := gitOut(t, v.workspace(), "diff-files", "--name-status"); out != "" {
		t.Errorf("git diff-files: the index's stat data does not match the files:\n%s", out)
	}
	fsck(t, v.workspace())
}

// TestCheckoutRefusesWhatGitRefuses: a tree entry git will not check out
// (one that would write into the clone's own .git, or out of the work
// tree) fails the clone with exit 2 and the way out, and the claim is left
// as it was.
func TestCheckoutRefusesWhatGitRefuses(t *testing.T) {
	for i, bad := range []string{".git", ".GIT", ".git. ", "git~1", "..", "a/b"} {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			repo := fmt.Sprintf("bad%d", i)
			if err := makeBadRepo(filepath.Join(server.Root, "checkout", repo+".git"), bad); err != nil {
				t.Fatal(err)
			}
			v := newVolume(t)
			v.env["OPENCODE_SEED_REPO"] = server.RepoURL("checkout", repo)
			before := snapshot(t, v.root)
			v.seed(t).want(t, 2, "cannot be checked out", "a path or mode git refuses to check out", "set annotation")
			if after := snapshot(t, v.root); !reflect.DeepEqual(before, after) {
				t.Errorf("the failed clone changed the volume:\n%v", after)
			}
		})
	}
}

// makeKindsRepo makes a bare repository whose one commit holds every kind
// of entry, in a work tree of its own.
func makeKindsRepo(bare string) error {
	if _, err := os.Stat(bare); err == nil {
		return nil
	}
	work, err := os.MkdirTemp("", "checkout-kinds-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	files := map[string]string{
		"README.md":      "# kinds\n",
		"empty":          "",
		"docs/a.txt":     "sorts before docs/a/\n",
		"docs/a/b.txt":   "inside docs/a\n",
		"docs/a b.txt":   "a space\n",
		"docs/ünï.md":    "not ASCII\n",
		".gitmodules":    "[submodule \"vendor/sub\"]\n\tpath = vendor/sub\n\turl = https://127.0.0.1/none/sub.git\n",
		"big/medium.bin": pseudoRandom(300<<10, 1), // streamed by the walk
		"big/large.bin":  pseudoRandom(3<<19, 2),   // streamed by go-git from the pack
	}
	for i := 0; i < 300; i++ { // enough for every worker
		files[fmt.Sprintf("many/d%d/e%d/f%d.txt", i%7, i%3, i)] = strings.Repeat(fmt.Sprintf("line %d\n", i), 1+i%50)
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Join(work, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(work, p), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "bin/run.sh"), []byte("#!/bin/sh\necho run\n"), 0o755); err != nil {
		return err
	}
	for link, target := range map[string]string{
		"link-file": "docs/a.txt", "link-dir": "docs", "docs/up": "../README.md",
		"dangling": "nowhere/at/all", "absolute": "/etc/hostname",
	} {
		if err := os.Symlink(target, filepath.Join(work, link)); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"update-index", "--add", "--cacheinfo", "160000,0123456789abcdef0123456789abcdef01234567,vendor/sub"},
		{"commit", "-q", "-m", "every kind of entry"},
		{"clone", "-q", "--bare", ".", bare},
	}
	for _, args := range steps {
		if err := gitserver.Git(work, args...); err != nil {
			return err
		}
	}
	return nil
}

// makeBadRepo makes a bare repository whose commit's tree holds one entry
// named name (written as raw tree bytes: git's own tools refuse some
// names): a directory with a config file in it, or a file when the name
// holds a slash.
func makeBadRepo(bare, name string) error {
	if err := gitserver.Git(filepath.Dir(filepath.Dir(bare)), "init", "-q", "--bare", "-b", "main", bare); err != nil {
		return err
	}
	blob, err := hashObject(bare, "blob", []byte("[core]\n\thooksPath = /tmp\n"))
	if err != nil {
		return err
	}
	inner, err := hashObject(bare, "tree", treeEntry("100644", "config", blob))
	if err != nil {
		return err
	}
	entry := treeEntry("40000", name, inner)
	if strings.Contains(name, "/") {
		entry = treeEntry("100644", name, blob)
	}
	root, err := hashObject(bare, "tree", append(treeEntry("100644", "README.md", blob), entry...))
	if err != nil {
		return err
	}
	cmd := exec.Command("git", "-C", bare, "commit-tree", "-m", "bad entry", root)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	commit, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("commit-tree: %w", err)
	}
	return gitserver.Git(bare, "update-ref", "refs/heads/main", strings.TrimSpace(string(commit)))
}

func treeEntry(mode, name, hash string) []byte {
	raw, _ := hex.DecodeString(hash)
	return append([]byte(mode+" "+name+"\x00"), raw...)
}

// hashObject stores content as an object of type typ, unchecked.
func hashObject(bare, typ string, content []byte) (string, error) {
	cmd := exec.Command("git", "-C", bare, "hash-object", "-t", typ, "-w", "--literally", "--stdin")
	cmd.Stdin = bytes.NewReader(content)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hash-object -t %s: %w", typ, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// pseudoRandom is n bytes that do not compress, the same for a seed.
func pseudoRandom(n int, seed uint64) string {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return string(b)
}

// workTree is the snapshot of a clone's work tree by path inside it, its
// .git and its own directory (whose mode the seed's staging decides) left
// out.
func workTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	for p, what := range snapshot(t, dir) {
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && rel != ".git" && !strings.HasPrefix(rel, ".git/") {
			tree[rel] = what
		}
	}
	return tree
}

func merged(a, b map[string]string) map[string]bool {
	all := map[string]bool{}
	for k := range a {
		all[k] = true
	}
	for k := range b {
		all[k] = true
	}
	return all
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// gitOut runs git in dir and returns its output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "safe.directory=*", "-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
