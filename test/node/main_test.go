package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/angryninja/opencode-injector/test/certmanager"
	"github.com/angryninja/opencode-injector/test/node"
	"github.com/angryninja/opencode-injector/test/rootonly"
)

var (
	// cluster is the running node (in node.StageTest).
	cluster *node.Cluster
	// skipReason says why the node cannot run here (see rootonly.Required).
	skipReason string
)

// assetsEnv carries the Kubernetes binaries' directory into the namespaces
// (built before: there is no network inside).
const assetsEnv = "OPENCODE_NODE_ASSETS"

// openCodeImageEnv names the OpenCode image archive prepare built, for the
// tests to import.
const openCodeImageEnv = "OPENCODE_NODE_OPENCODE_IMAGE"

// injectorVersion is the version compiled into the injector image under
// test (its layout's ref name, so its tag).
const injectorVersion = "node-test"

func TestMain(m *testing.M) {
	switch node.Stage() {
	case node.StageInit:
		os.Exit(node.Init())
	case node.StageTest:
		os.Exit(runTests(m))
	}
	if reason := node.Unavailable(); reason != "" {
		if rootonly.Required() {
			fmt.Fprintln(os.Stderr, "node: the real-node suite cannot run (CI=true outside GitHub Actions):", reason)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "node: the real-node suite is skipped:", reason)
		skipReason = reason
		os.Exit(m.Run())
	}
	if err := node.CheckRuntimeVersions(filepath.Join("..", "..", "hack", "test-deps.sh")); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
	os.Exit(node.RunIsolated(prepare))
}

// prepare builds, on the machine, what the tests need inside the
// namespaces and cannot build there (there is no network): the Kubernetes
// binaries, the OpenCode image and the cert-manager CRDs. (The injector
// image is built inside, when a test needs it, from the module cache.)
func prepare(string) ([]string, error) {
	assets, err := nodeAssets()
	if err != nil {
		return nil, err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	cache = filepath.Join(cache, "opencode-injector", "node")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	openCode, err := node.BuildOpenCodeImage(cache, os.Stderr)
	if err != nil {
		return nil, err
	}
	crds, err := certmanager.CRDFiles()
	if err != nil {
		return nil, err
	}
	return []string{
		assetsEnv + "=" + assets, openCodeImageEnv + "=" + openCode,
		crdsEnv + "=" + strings.Join(crds, string(os.PathListSeparator)),
	}, nil
}

// nodeAssets builds (once, cached) or finds the Kubernetes binaries:
// hack/envtest-assets.sh --node.
func nodeAssets() (string, error) {
	cmd := exec.Command("bash", filepath.Join("..", "..", "hack", "envtest-assets.sh"), "--node")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build the node's Kubernetes binaries: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func runTests(m *testing.M) int {
	// cert-manager's CA injector runs on a controller-runtime manager.
	ctrllog.SetLogger(logr.Discard())
	c, err := node.Start(context.Background(), os.Getenv(assetsEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "node: start:", err)
		return 1
	}
	cluster = c
	code := m.Run()
	if code != 0 {
		c.WriteLogTails(os.Stderr)
	}
	if certManager != nil {
		if err := certManager.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "node: cert-manager:", err)
			code = 1
		}
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "node: stop:", err)
		code = 1
	}
	return code
}

// needNode is the running node, or skips t with the reason it cannot run.
func needNode(t *testing.T) *node.Cluster {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return cluster
}
