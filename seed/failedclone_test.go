package seed_test

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

// TestFailedCloneLeavesTheClaimAsItWas: at the real depth of the layout
// (workspace/<host>/<owner>/<name>), a clone that fails removes the host,
// owner and name directories it created and keeps those that were there.
func TestFailedCloneLeavesTheClaimAsItWas(t *testing.T) {
	refused := closedAddress(t)
	for _, failure := range []struct {
		name string
		set  func(v *volume)
		code int
		says string
	}{
		{"connection refused", func(v *volume) {
			v.env["OPENCODE_SEED_REPO"] = "https://" + refused + "/acme/tools.git"
			v.env["OPENCODE_SEED_ALLOWED_HOSTS"] = server.Host + "," + refused
			v.env["OPENCODE_SEED_WORKSPACE"] = filepath.Join(v.claim, "workspace", refused, "acme", "tools")
		}, 5, "network error"},
		{"authentication", func(v *volume) { v.env["GITHUB_TOKEN"] = token + "-wrong" }, 3, "authentication failed"},
		{"missing repository", func(v *volume) {
			v.env["OPENCODE_SEED_REPO"] = server.RepoURL("acme", "missing")
			v.env["OPENCODE_SEED_WORKSPACE"] = filepath.Join(filepath.Dir(v.workspace()), "missing")
		}, 4, "repository not found"},
		{"missing branch", func(v *volume) { v.env["OPENCODE_SEED_BRANCH"] = "missing" }, 4, `branch "missing" not found`},
	} {
		for _, layout := range []struct {
			name  string
			exist func(t *testing.T, ws string) // what the claim holds before
		}{
			{"fresh claim", func(*testing.T, string) {}},
			{"workspace directory there", func(t *testing.T, ws string) {
				mkdir(t, filepath.Dir(filepath.Dir(filepath.Dir(ws))))
			}},
			{"host directory there", func(t *testing.T, ws string) { mkdir(t, filepath.Dir(filepath.Dir(ws))) }},
			{"owner directory there, with another clone", func(t *testing.T, ws string) {
				write(t, filepath.Join(filepath.Dir(ws), "other", "README.md"), "another clone\n")
			}},
			{"empty clone directory there", func(t *testing.T, ws string) { mkdir(t, ws) }},
		} {
			t.Run(failure.name+"/"+layout.name, func(t *testing.T) {
				v := newVolume(t)
				failure.set(v)
				layout.exist(t, v.env["OPENCODE_SEED_WORKSPACE"])
				before := snapshot(t, v.claim)
				v.seed(t).want(t, failure.code, failure.says)
				if after := snapshot(t, v.claim); !reflect.DeepEqual(before, after) {
					t.Errorf("the failed clone changed the claim: %s", diff(before, after))
				}
			})
		}
	}
}

// TestKilledCloneIsRemovedOnNextStart: a seed killed by the kernel in the
// middle of its transfer leaves its staging directory; the next start
// removes it before anything else, so when that start fails too the claim
// is as it was before the first, and when it succeeds the clone is whole.
func TestKilledCloneIsRemovedOnNextStart(t *testing.T) {
	v := newVolume(t)
	before := snapshot(t, v.claim)
	server.SetFault(gitserver.FaultStall)
	defer server.SetFault(gitserver.FaultNone)
	cmd := seedCmd(v.env)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	packs := filepath.Join(v.claim, ".workspace.seed-*", "*", "acme", "tools", ".git", "objects", "pack", "tmp_pack_*")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if found, _ := filepath.Glob(packs); len(found) > 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the clone never started receiving its pack")
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL, as the OOM killer sends it
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if staged, _ := filepath.Glob(filepath.Join(v.claim, ".workspace.seed-*")); len(staged) != 2 {
		t.Fatalf("the killed clone left %v, want its staging directory and the sentinel beside it", staged)
	}

	server.SetFault(gitserver.FaultAbort)
	v.seed(t).want(t, 5, "left by an interrupted clone", "network error", "the next start retries")
	if after := snapshot(t, v.claim); !reflect.DeepEqual(before, after) {
		t.Errorf("after a kill and a failed start the claim differs: %s", diff(before, after))
	}
	server.SetFault(gitserver.FaultNone)
	v.seed(t).want(t, 0, "cloned")
	fsck(t, v.workspace())
}

// closedAddress is host:port on 127.0.0.1 where nothing listens.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
