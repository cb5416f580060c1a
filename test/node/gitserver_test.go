package node_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

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
