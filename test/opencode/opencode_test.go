package opencode_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/angryninja/opencode-injector/test/kubelet"
	"github.com/angryninja/opencode-injector/test/opencode"
)

const (
	token    = "test-token-never-printed"
	password = "correct horse battery staple"
	login    = `{"github-copilot":{"type":"oauth","refresh":"gho_seeded_refresh","access":"tid=seeded","expires":0}}`
)

// opencodeBinary installs (once) or finds the real OpenCode. Without it the
// test cannot run: in CI that is a failure, elsewhere a skip that says why.
func opencodeBinary(t *testing.T) string {
	t.Helper()
	bin, err := opencode.Binary(os.Stderr)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the real OpenCode is not available, and CI must run it: %v", err)
		}
		t.Skipf("the real OpenCode is not available (set %s to an opencode binary): %v", opencode.BinaryEnv, err)
	}
	return bin
}

// seedBinary builds opencode-injector, whose `seed` the init container runs.
func seedBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "opencode-injector")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/opencode-injector").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRealOpenCodeInTheInjectedPod runs the real OpenCode server the way the
// injected flux workspace runs it, on a claim the real seed prepared from
// the real git server, then stops it and starts the pod again.
func TestRealOpenCodeInTheInjectedPod(t *testing.T) {
	bin := opencodeBinary(t)
	seed := seedBinary(t)
	dir := t.TempDir()

	// The git server with the workspace's repository.
	repos := filepath.Join(dir, "repos")
	if err := gitserver.MakeRepo(repos, "angryninja", "k8s-cluster", 50, 3); err != nil {
		t.Fatal(err)
	}
	git, err := gitserver.Start(repos, token, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.Close)

	// The flux workspace, injected.
	d := fluxDeployment(t)
	d.Annotations[contract.AnnotationRepo] = git.RepoURL("angryninja", "k8s-cluster")
	s := injection.DefaultSettings(injection.ImageRepository + ":v0.0.0-test")
	s.AllowedGitHosts = []string{git.Host}
	injected, _, err := injection.Mutate(d, nil, s)
	if err != nil {
		t.Fatal(err)
	}
	claim, secretDir := filepath.Join(dir, "claim"), filepath.Join(dir, "secret")
	for _, p := range []string{claim, secretDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(secretDir, contract.SecretKeyAuth), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := &kubelet.Pod{
		Spec:    injected.Spec.Template.Spec,
		Secret:  map[string]string{contract.SecretKeyPassword: password, contract.SecretKeyToken: token, contract.SecretKeyAuth: login},
		Volumes: map[string]string{contract.DataVolumeName: claim, contract.AuthVolumeName: secretDir},
		Image:   map[string]string{"SSL_CERT_FILE": git.CAFile},
	}
	seedC, err := pod.Container(contract.SeedContainerName)
	if err != nil {
		t.Fatal(err)
	}
	app, err := pod.Container("app")
	if err != nil {
		t.Fatal(err)
	}
	runSeed := func() {
		t.Helper()
		cmd, err := pod.Command(seedC, seed)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seed: %v\n%s", err, out)
		}
	}
	env, err := pod.Env(app)
	if err != nil {
		t.Fatal(err)
	}
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	worktree := pod.HostPath(app, app.WorkingDir)

	// Pod start: the init container, then OpenCode, traced when strace is
	// there, to see every file it writes.
	runSeed()
	trace := filepath.Join(dir, "strace")
	var wrap []string
	if strace, err := exec.LookPath("strace"); err == nil {
		// --seccomp-bpf stops OpenCode only on the traced calls.
		wrap = []string{strace, "-f", "-qq", "--seccomp-bpf", "-e", "signal=none", "-s", "4096", "-o", trace, "-e", "trace=" + writeSyscalls}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("strace is needed to check that OpenCode writes nothing outside the claim")
	}
	srv, err := opencode.Start(pod, app, bin, opencode.Offline, wrap...)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Stop()
		}
	})

	t.Run("password", func(t *testing.T) {
		code, _, err := srv.Request(http.MethodGet, "/path", nil, false)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET /path without the password: %d, %v; want 401", code, err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/path", nil)
		req.SetBasicAuth("opencode", "wrong")
		if resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /path with a wrong password: %v, %v; want 401", resp, err)
		} else {
			resp.Body.Close()
		}
		code, _, err = srv.Request(http.MethodGet, "/path", nil, true)
		if err != nil || code != http.StatusOK {
			t.Errorf("GET /path with the password: %d, %v; want 200", code, err)
		}
	})

	t.Run("paths are the claim's", func(t *testing.T) {
		var paths struct{ Home, State, Config, Worktree, Directory string }
		get(t, srv, "/path", &paths)
		want := map[string][2]string{
			"home":      {paths.Home, envMap["HOME"]},
			"config":    {paths.Config, filepath.Join(envMap["XDG_CONFIG_HOME"], "opencode")},
			"state":     {paths.State, filepath.Join(envMap["XDG_STATE_HOME"], "opencode")},
			"worktree":  {paths.Worktree, worktree},
			"directory": {paths.Directory, worktree},
		}
		for name, p := range want {
			if p[0] != p[1] {
				t.Errorf("OpenCode's %s is %q, want %q", name, p[0], p[1])
			}
			if !strings.HasPrefix(p[0], claim+string(filepath.Separator)) {
				t.Errorf("OpenCode's %s %q is outside the claim %s", name, p[0], claim)
			}
		}
		// The worktree is the seed's clone of the workspace's repository.
		out, err := exec.Command("git", "-C", paths.Worktree, "remote", "get-url", "origin").Output()
		if err != nil || strings.TrimSpace(string(out)) != git.RepoURL("angryninja", "k8s-cluster") {
			t.Errorf("the worktree's origin: %q, %v", out, err)
		}
		var project struct{ Worktree, VCS string }
		get(t, srv, "/project/current", &project)
		if project.Worktree != worktree || project.VCS != "git" {
			t.Errorf("OpenCode's project: %+v; want the git worktree %s", project, worktree)
		}
	})

	t.Run("the seeded Copilot login", func(t *testing.T) {
		cmd, err := pod.Command(app, bin)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Args = []string{bin, "auth", "list"}
		for k, v := range opencode.Offline {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("opencode auth list: %v\n%s", err, out)
		}
		text := stripANSI(string(out))
		for _, want := range []string{"GitHub Copilot", "oauth", "1 credentials", "~/.local/share/opencode/auth.json"} {
			if !strings.Contains(text, want) {
				t.Errorf("opencode auth list does not say %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "gho_seeded_refresh") {
			t.Error("opencode auth list printed the token")
		}
	})

	// A session, created through the API.
	var session struct{ ID, Title, Directory string }
	code, body, err := srv.Request(http.MethodPost, "/session", map[string]string{"title": "survives restarts"}, true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /session: %d, %v: %s", code, err, body)
	}
	if err := json.Unmarshal(body, &session); err != nil || session.ID == "" {
		t.Fatalf("POST /session: %s, %v", body, err)
	}

	// The pod is deleted: OpenCode gets SIGTERM.
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	stopped = true
	if wrap != nil {
		t.Run("nothing written outside the claim, no connection beyond 127.0.0.1", func(t *testing.T) {
			outside := writtenOutside(t, trace, claim)
			if len(outside) > 0 {
				t.Errorf("OpenCode wrote outside the claim %s or connected beyond 127.0.0.1:\n%s", claim, strings.Join(outside, "\n"))
			}
		})
	}

	// The pod starts again on the same claim: the seed, then OpenCode.
	runSeed()
	srv, err = opencode.Start(pod, app, bin, opencode.Offline)
	if err != nil {
		t.Fatal(err)
	}
	stopped = false
	rssStart, err := srv.RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the session survives", func(t *testing.T) {
		var again struct{ ID, Title, Directory string }
		get(t, srv, "/session/"+session.ID, &again)
		if again != session {
			t.Errorf("after the restart the session is %+v, was %+v", again, session)
		}
		// Sessions live in the database under XDG_DATA_HOME, on the claim.
		if _, err := os.Stat(filepath.Join(envMap["XDG_DATA_HOME"], "opencode", "opencode.db")); err != nil {
			t.Errorf("OpenCode's database is not on the claim: %v", err)
		}
		var list []struct{ ID string }
		get(t, srv, "/session", &list)
		if len(list) != 1 || list[0].ID != session.ID {
			t.Errorf("after the restart the sessions are %+v", list)
		}
	})
	code, body, err = srv.Request(http.MethodPost, "/session", map[string]string{"title": "a second one"}, true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /session: %d, %v: %s", code, err, body)
	}
	get(t, srv, "/session", &[]struct{ ID string }{})
	rssSession, err := srv.RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opencode %s RSS: %d MiB after start, %d MiB after a session (default limits %s)", opencode.Version, rssStart>>20, rssSession>>20, injection.DefaultLimitsFlag)
}

func get(t *testing.T, srv *opencode.Server, path string, v any) {
	t.Helper()
	code, body, err := srv.Request(http.MethodGet, path, nil, true)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d, %v: %s", path, code, err, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// writeSyscalls are the system calls that create, change or remove files,
// and connect.
const writeSyscalls = "connect,open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,symlink,symlinkat,link,linkat,truncate,chmod,fchmodat,chown,fchownat,utimensat"

// writtenOutside reads an strace log and returns the paths outside claim
// that were created, changed or removed (opens for reading, failed calls
// and devices do not count), and every connection to an address other than
// 127.0.0.1 (local sockets do not count).
func writtenOutside(t *testing.T, trace, claim string) []string {
	t.Helper()
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	quoted := regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		call := line
		if _, rest, ok := strings.Cut(line, " "); ok {
			call = strings.TrimSpace(rest)
		}
		// A non-blocking connect returns EINPROGRESS: it still counts.
		if strings.HasPrefix(call, "connect(") {
			if strings.Contains(call, "AF_UNIX") || strings.Contains(call, `inet_addr("127.0.0.1")`) {
				continue
			}
			seen["connect "+call] = true
			continue
		}
		if strings.Contains(call, "= -1 ") || strings.HasPrefix(call, "---") || strings.HasPrefix(call, "+++") || strings.Contains(call, "<unfinished") {
			continue
		}
		if strings.HasPrefix(call, "open") || strings.HasPrefix(call, "creat") {
			if !strings.Contains(call, "O_WRONLY") && !strings.Contains(call, "O_RDWR") && !strings.Contains(call, "O_CREAT") && !strings.Contains(call, "O_TRUNC") && !strings.HasPrefix(call, "creat") {
				continue
			}
		}
		for _, m := range quoted.FindAllStringSubmatch(call, -1) {
			p := m[1]
			if !strings.HasPrefix(p, "/") || p == claim || strings.HasPrefix(p, claim+"/") {
				continue
			}
			if strings.HasPrefix(p, "/dev/") || strings.HasPrefix(p, "/proc/") {
				continue
			}
			// OpenCode's scratch directory, os.tmpdir()/opencode: in the
			// pod, /tmp/opencode in the container's own filesystem, gone
			// with the pod (README: "What OpenCode writes").
			if tmp := filepath.Join(os.TempDir(), "opencode"); p == tmp || strings.HasPrefix(p, tmp+"/") {
				continue
			}
			seen[fmt.Sprintf("%s %s", call[:strings.Index(call, "(")], p)] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
