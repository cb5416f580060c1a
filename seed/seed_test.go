package seed_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

func TestFirstStartClonesSecondStartTouchesNothing(t *testing.T) {
	v := newVolume(t)
	v.seed(t).want(t, 0, "cloned "+server.RepoURL("acme", "tools"))
	if _, err := os.Stat(filepath.Join(v.workspace(), "dir1", "file1.txt")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"} {
		if fi, err := os.Stat(v.env[d]); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}
	assertNoToken(t, v.claim)

	// Uncommitted work, as a user would leave it.
	if err := os.WriteFile(filepath.Join(v.workspace(), "dir1", "file1.txt"), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.workspace(), "notes.md"), []byte("unpushed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, requests := snapshot(t, v.workspace()), server.Requests()
	v.seed(t).want(t, 0, "repository present")
	if n := server.Requests() - requests; n != 0 {
		t.Errorf("the second start made %d requests to the git server", n)
	}
	if !reflect.DeepEqual(before, snapshot(t, v.workspace())) {
		t.Error("the second start changed the workspace")
	}
}

func TestBranch(t *testing.T) {
	v := newVolume(t)
	v.env["OPENCODE_SEED_BRANCH"] = "other"
	v.seed(t).want(t, 0, "(other)")
	if _, err := os.Stat(filepath.Join(v.workspace(), "OTHER")); err != nil {
		t.Errorf("branch other not checked out: %v", err)
	}
	v = newVolume(t)
	v.env["OPENCODE_SEED_BRANCH"] = "missing"
	v.seed(t).want(t, 4, `branch "missing" not found`)
}

func TestStalledTransferTimesOut(t *testing.T) {
	v := newVolume(t)
	server.SetFault(gitserver.FaultStall)
	defer server.SetFault(gitserver.FaultNone)
	v.seed(t, "--stall-timeout", "1s").want(t, 5, "stalled (nothing received for 1s)")
	if entries, _ := os.ReadDir(filepath.Join(v.claim, "workspace")); len(entries) != 0 {
		t.Errorf("a timed-out clone left %v", entries)
	}
}

func TestWrongTokenFailsAndLeavesVolume(t *testing.T) {
	v := newVolume(t)
	v.env["GITHUB_TOKEN"] = token + "-wrong"
	before := snapshot(t, v.claim)
	v.seed(t).want(t, 3, "authentication failed", "GITHUB_TOKEN was refused")
	if !reflect.DeepEqual(before, snapshot(t, v.claim)) {
		t.Errorf("a refused clone changed the claim: %v", snapshot(t, v.claim))
	}
	delete(v.env, "GITHUB_TOKEN")
	v.seed(t).want(t, 3, "set key GITHUB_TOKEN")
}

func TestRepositoryNotFound(t *testing.T) {
	v := newVolume(t)
	v.env["OPENCODE_SEED_REPO"] = server.RepoURL("acme", "missing")
	v.seed(t).want(t, 4, "repository not found")
}

func TestWorkspaceHoldsSomethingElse(t *testing.T) {
	t.Run("a directory of files", func(t *testing.T) {
		v := newVolume(t)
		work := filepath.Join(v.workspace(), "unpushed.txt")
		if err := os.MkdirAll(v.workspace(), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(work, []byte("precious\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		requests := server.Requests()
		v.seed(t).want(t, 7, "not a git repository", "nothing was deleted")
		if b, err := os.ReadFile(work); err != nil || string(b) != "precious\n" {
			t.Errorf("the user's file is gone: %v", err)
		}
		if server.Requests() != requests {
			t.Error("the seed went to the network")
		}
	})
	t.Run("a clone of another repository is left as it is", func(t *testing.T) {
		v := newVolume(t)
		v.env["OPENCODE_SEED_REPO"] = server.RepoURL("acme", "other")
		v.env["OPENCODE_SEED_WORKSPACE"] = v.workspace() // the "tools" path
		v.seed(t).want(t, 0, "cloned")
		v.env["OPENCODE_SEED_REPO"] = server.RepoURL("acme", "tools")
		v.seed(t).want(t, 0, "origin now points at "+server.RepoURL("acme", "other"), "left as it is")
	})
	t.Run("a file", func(t *testing.T) {
		v := newVolume(t)
		if err := os.MkdirAll(filepath.Dir(v.workspace()), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(v.workspace(), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		v.seed(t).want(t, 7, "is a file", "nothing was deleted")
		if b, err := os.ReadFile(v.workspace()); err != nil || string(b) != "x" {
			t.Errorf("the file is gone: %v", err)
		}
	})
	t.Run("an empty directory is cloned into", func(t *testing.T) {
		v := newVolume(t)
		if err := os.MkdirAll(v.workspace(), 0o755); err != nil {
			t.Fatal(err)
		}
		v.seed(t).want(t, 0, "cloned")
		fsck(t, v.workspace())
	})
}

func TestPermissionDenied(t *testing.T) {
	v := newVolume(t)
	cmd := seedCmd(v.env)
	if os.Getuid() == 0 {
		// Root ignores modes: run as nobody against root's 0755 claim, as a
		// pod with runAsUser and no fsGroup would on a fresh volume.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := os.Chmod(v.root, 0o755); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(v.claim, 0o555); err != nil {
		t.Fatal(err)
	}
	run(t, cmd).want(t, 6, "permission denied", "fsGroup")
}

// TestHomeOfAnotherUIDIsADiskError: after runAsUser changed without an
// fsGroup, HOME's 0700 directories belong to the old uid. That is a disk
// error to fix (exit 6, fsGroup named), not an entry of the user's to
// leave alone: exit 0 would start OpenCode with a HOME it cannot read.
func TestHomeOfAnotherUIDIsADiskError(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to seed as one uid and start again as another")
	}
	v := newVolume(t)
	write(t, v.env["OPENCODE_SEED_AUTH_SOURCE"], `{"a":"b"}`)
	v.seed(t).want(t, 0, "auth.json: seeded")
	for _, dir := range []string{filepath.Dir(v.root), v.root, v.claim} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The clone is handed over; HOME stays the old uid's.
	if err := filepath.Walk(filepath.Join(v.claim, "workspace"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	}); err != nil {
		t.Fatal(err)
	}
	cmd := seedCmd(v.env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	r := run(t, cmd)
	r.want(t, 6, "permission denied", "fsGroup")
	if strings.Contains(r.stdout+r.stderr, "is not a directory") {
		t.Errorf("a directory it may not read is reported as the user's non-directory:\n%s%s", r.stdout, r.stderr)
	}
}

// TestUsersSymlinkTheSeedCannotFollowIsLeftAlone: a workspace whose image
// runs as root has its seed run as uid 0 with every capability dropped,
// while OpenCode keeps the runtime's defaults. A symlink the user made in
// HOME to a 0700 directory of another uid (a backup restored with tar)
// works for OpenCode; the seed cannot follow it, and leaves it alone
// (exit 0) instead of stopping the pod.
func TestUsersSymlinkTheSeedCannotFollowIsLeftAlone(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to drop root's capabilities")
	}
	setpriv, err := exec.LookPath("setpriv") // util-linux
	if err != nil {
		t.Fatalf("setpriv: %v", err)
	}
	v := newVolume(t)
	write(t, v.env["OPENCODE_SEED_AUTH_SOURCE"], `{"a":"b"}`)
	v.seed(t).want(t, 0, "auth.json: seeded")
	private := filepath.Join(v.claim, "backup")
	if err := os.MkdirAll(filepath.Join(private, "cache"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(private, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cache := v.env["XDG_CACHE_HOME"]
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(private, "cache"), cache)
	before := snapshot(t, v.claim)
	capless := seedCmd(v.env)
	capless.Args = append([]string{setpriv, "--bounding-set=-all", "--inh-caps=-all", "--", capless.Path}, capless.Args[1:]...)
	capless.Path = setpriv
	run(t, capless).want(t, 0, cache+" is not a directory")
	if after := snapshot(t, v.claim); !reflect.DeepEqual(before, after) {
		t.Errorf("the claim changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestUsageErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		key, value, want string
	}{
		"no repo":          {"OPENCODE_SEED_REPO", "", "is missing or empty"},
		"http":             {"OPENCODE_SEED_REPO", "http://" + server.Host + "/acme/tools.git", "only https"},
		"host not allowed": {"OPENCODE_SEED_ALLOWED_HOSTS", "github.com", "not allowed"},
		"default hosts":    {"OPENCODE_SEED_ALLOWED_HOSTS", "", "is on host " + server.Host + ", which is not allowed"},
		"relative path":    {"OPENCODE_SEED_WORKSPACE", "workspace/tools", "absolute path"},
		"bad branch":       {"OPENCODE_SEED_BRANCH", "a..b", "not a valid git branch"},
		"bad stall":        {"OPENCODE_SEED_STALL_TIMEOUT", "soon", "--stall-timeout"},
		"bad memory limit": {"OPENCODE_SEED_MEMORY_LIMIT", "lots", "--memory-limit"},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVolume(t)
			v.env[tc.key] = tc.value
			requests := server.Requests()
			v.seed(t).want(t, 2, tc.want)
			if server.Requests() != requests {
				t.Error("a configuration error went to the network")
			}
		})
	}
}
