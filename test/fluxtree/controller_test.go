package fluxtree_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// kustomizeController is the path of the kustomize-controller binary that
// hack/flux-assets.sh builds from its Go module (cached after the first
// run). Where it cannot be built (no module proxy) the test is skipped with
// the reason, or fails under CI=true.
func kustomizeController(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "hack", "flux-assets.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		why := fmt.Sprintf("cannot build kustomize-controller (hack/flux-assets.sh): %v\n%s", err, stderr.String())
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		fmt.Fprintf(os.Stderr, "%s: skipped: %s\n", t.Name(), why) // said without -v too
		t.Skip(why)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "kustomize-controller")
}

// logBuffer keeps a process's output for the test's failure report.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startKustomizeController runs the controller as its own process against
// the API server that kubeconfig names, the way Flux's install runs it
// (every namespace watched, no leader election), with dependencies
// re-checked every 2s instead of 30s so the test is short. Its log is
// printed when the test fails; it is stopped when the test ends.
func startKustomizeController(t *testing.T, bin, kubeconfig string) {
	t.Helper()
	cmd := exec.Command(bin,
		"--metrics-addr=0",
		"--health-addr=0",
		"--concurrent=10",
		"--requeue-dependency=2s",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE=flux-system")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("kustomize-controller's log (last %d lines):\n%s", min(len(lines), 200), strings.Join(lines[max(0, len(lines)-200):], "\n"))
		}
	})
}
