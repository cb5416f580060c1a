// Package check runs `opencode-injector check`, the built binary with a
// kubeconfig, against a real kube-apiserver (envtest) holding the
// injector's objects from deploy/ and a workspace the real webhook
// injected, and provokes each failure it must report.
package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/test/testenv"
)

const digest = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

var (
	ctx = context.Background()
	env *testenv.Env
	// root is the repository; binary the built command; kubeconfig a
	// cluster-admin's, as a user runs check with.
	root, binary, kubeconfig string
	// seedImage is what the injector's Pods resolve: deploy/'s image
	// pinned by the digest their status reports.
	seedImage = injection.ImageRepository + "@" + digest
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctrl.SetLogger(logr.Discard()) // the test reads what check prints, not the webhook's log
	var err error
	if root, err = testenv.Root(); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "check-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "opencode-injector")
	if out, err := exec.Command("go", "build", "-o", binary, filepath.Join(root, "cmd", "opencode-injector")).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build: %v\n%s", err, out)
	}
	// ClusterIPs on the loopback (a /24 of its own, so parallel runs do not
	// meet): the API server calls a webhook at its Service's ClusterIP, so
	// the test serves the injector there and the API server's path to it
	// is real.
	serviceCIDR := fmt.Sprintf("127.%d.%d.0/24", 1+rand.IntN(254), rand.IntN(256))
	if env, err = testenv.StartWithFlags(root, injection.DefaultSettings(seedImage), map[string]string{"service-cluster-ip-range": serviceCIDR}); err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	user, err := env.Env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return 0, err
	}
	config, err := user.KubeConfig()
	if err != nil {
		return 0, err
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, config, 0o600); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// check runs `opencode-injector check --kubeconfig …` and returns its exit
// code, its output and its ✗ lines.
func check(t *testing.T) (code int, out string, failed []string) {
	t.Helper()
	return checkAs(t, kubeconfig)
}

// checkAs is check with another user's kubeconfig.
func checkAs(t *testing.T, kubeconfig string) (code int, out string, failed []string) {
	t.Helper()
	cmd := exec.Command(binary, "check", "--kubeconfig", kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run check: %v", err)
	}
	if code > 1 {
		t.Fatalf("check exited %d:\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "✗") {
			failed = append(failed, strings.TrimSpace(l))
		}
	}
	return code, stdout.String(), failed
}

// TestCheckUnreachable: a cluster check cannot reach is exit 2 with the
// reason on stderr, never a list of failed checks.
func TestCheckUnreachable(t *testing.T) {
	config := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(config, []byte(`apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://`+testenv.FreeAddr(t)+`"}}]
contexts: [{name: gone, context: {cluster: gone, user: nobody}}]
users: [{name: nobody, user: {token: x}}]
current-context: gone
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "check", "--kubeconfig", config, "--timeout", "5s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var exit *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 2 || stdout.Len() > 0 || !strings.Contains(stderr.String(), "check: reach the API server") {
		t.Errorf("unreachable cluster: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}
