package node_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/angryninja/opencode-injector/test/node"
)

// gitToken is the token the suite's git server requires, the workspaces'
// GITHUB_TOKEN.
const gitToken = "node-test-token"

var (
	gitOnce sync.Once
	gitSrv  *gitserver.Server
	gitErr  error
)

// gitServer is the suite's self-hosted git host, started once per run: a
// real git server over HTTPS with a CA of its own, on the node's address
// (pods reach it through their bridge; there is no DNS, so its certificate
// names the IP). The install allows its host (installOverlay); tests add
// their repositories under its Root. It ends with the suite's namespaces.
func gitServer(t *testing.T) *gitserver.Server {
	t.Helper()
	gitOnce.Do(func() {
		root := filepath.Join(node.WorkDir(), "git")
		if gitErr = os.MkdirAll(root, 0o755); gitErr != nil {
			return
		}
		gitSrv, gitErr = gitserver.StartWithOwnCAAt(node.NodeIP, root, gitToken, node.WorkDir(), "node-git")
	})
	if gitErr != nil {
		t.Fatal(gitErr)
	}
	return gitSrv
}

// workspaceSecrets creates in ns what a workspace cloning from the suite's
// git server needs: the Secret opencode-secret with the password and the
// server's token, and the ConfigMap git-ca with the server's CA (for
// annotation ca-bundle).
func workspaceSecrets(t *testing.T, c *node.Cluster, ns string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "opencode-secret"},
		StringData: map[string]string{contract.SecretKeyPassword: password, contract.SecretKeyToken: gitToken},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(gitServer(t).CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "git-ca"},
		Data:       map[string]string{contract.CABundleKey: string(caPEM)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
