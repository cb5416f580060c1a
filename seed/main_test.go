package seed_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

const token = "ghp_TESTTOKEN0123456789abcdefSECRET"

// envTestBinary names a binary to run instead of the one built from this
// tree: how BENCHMARKS.md measures a landed release on the same tests.
const envTestBinary = "OPENCODE_SEED_TEST_BINARY"

var (
	binary string // opencode-injector built for this test run
	server *gitserver.Server
)

// TestMain builds the real binary (the tests run it the way the kubelet
// runs the init container) and starts a git smart-HTTP server over HTTPS on
// 127.0.0.1 with basic auth and a test CA.
func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "seed-test-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the permission test runs the binary as another user
		return 1, err
	}
	binary = filepath.Join(dir, "opencode-injector")
	if other := os.Getenv(envTestBinary); other != "" {
		binary = other // another build, for a one-off comparison (BENCHMARKS.md)
	} else if out, err := exec.Command("go", "build", "-o", binary, "../cmd/opencode-injector").CombinedOutput(); err != nil {
		return 1, fmt.Errorf("build: %v: %s", err, out)
	}
	repos := filepath.Join(dir, "repos")
	for _, r := range [][2]string{{"acme", "tools"}, {"acme", "other"}, {"angryninja", "k8s-cluster"}} {
		if err := gitserver.MakeRepo(repos, r[0], r[1], 40, 3); err != nil {
			return 1, err
		}
	}
	if server, err = gitserver.Start(repos, token, dir); err != nil {
		return 1, err
	}
	defer server.Close()
	return m.Run(), nil
}

// volume is a claim and a mounted Secret laid out like the injected pod's,
// under a temporary directory.
type volume struct {
	root, claim, secret string
	env                 map[string]string
}

func newVolume(t testing.TB) *volume {
	t.Helper()
	root := t.TempDir()
	v := &volume{root: root, claim: filepath.Join(root, "data"), secret: filepath.Join(root, "secret")}
	for _, d := range []string{v.claim, v.secret} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(v.claim, "home")
	v.env = map[string]string{
		"OPENCODE_SEED_REPO":          server.RepoURL("acme", "tools"),
		"OPENCODE_SEED_WORKSPACE":     v.workspace(),
		"OPENCODE_SEED_AUTH_SOURCE":   filepath.Join(v.secret, "auth.json"),
		"OPENCODE_SEED_AUTH_TARGET":   filepath.Join(home, ".local/share/opencode/auth.json"),
		"OPENCODE_SEED_ALLOWED_HOSTS": server.Host,
		"HOME":                        home,
		"XDG_DATA_HOME":               filepath.Join(home, ".local/share"),
		"XDG_CONFIG_HOME":             filepath.Join(home, ".config"),
		"XDG_STATE_HOME":              filepath.Join(home, ".local/state"),
		"XDG_CACHE_HOME":              filepath.Join(home, ".cache"),
		"GITHUB_TOKEN":                token,
		"SSL_CERT_FILE":               server.CAFile,
	}
	return v
}

// workspace is acme/tools's clone path at the real layout's depth
// (contract.Repo.ClonePath: workspace/<host>/<owner>/<name>).
func (v *volume) workspace() string {
	return filepath.Join(v.claim, "workspace", server.Host, "acme", "tools")
}

type result struct {
	stdout, stderr string
	code           int
}

// seed runs the binary with only the volume's env (and PATH).
func (v *volume) seed(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, seedCmd(v.env, args...))
}

func seedCmd(env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"seed"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, val := range env {
		cmd.Env = append(cmd.Env, k+"="+val)
	}
	return cmd
}

// run runs cmd and checks that no output ever carries the token.
func run(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if strings.Contains(r.stdout+r.stderr, token) {
		t.Errorf("the token reached the output:\n%s\n%s", r.stdout, r.stderr)
	}
	return r
}

func (r result) want(t *testing.T, code int, substrings ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range substrings {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output lacks %q:\nstdout: %s\nstderr: %s", s, r.stdout, r.stderr)
		}
	}
}

// snapshot maps every path under dir to its mode and content (a link's
// target).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		content := ""
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			content = string(b)
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			content = "-> " + target
		}
		snap[p] = fi.Mode().String() + " " + content
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// assertNoToken fails when any file under dir holds the token.
func assertNoToken(t *testing.T, dir string) {
	t.Helper()
	for p, content := range snapshot(t, dir) {
		if strings.Contains(content, token) {
			t.Errorf("%s holds the token", p)
		}
	}
}
