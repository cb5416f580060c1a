package seed_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/test/kubelet"
)

// TestTokenOnlyGoesToAllowedHosts runs git with the injected OpenCode
// container's env, as a user or the agent would inside the workspace: the
// credential helper answers for the allowed git host, and another host that
// asks for credentials (by IP with another port, or by name) is never
// offered the token.
func TestTokenOnlyGoesToAllowedHosts(t *testing.T) {
	injected := injectedFlux(t)
	pod := &kubelet.Pod{
		Spec:    injected.Spec.Template.Spec,
		Secret:  map[string]string{"OPENCODE_SERVER_PASSWORD": "hunter2", "GITHUB_TOKEN": token},
		Volumes: map[string]string{contract.DataVolumeName: t.TempDir(), contract.AuthVolumeName: t.TempDir()},
		Image:   map[string]string{"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_SSL_NO_VERIFY": "1", "GIT_ASKPASS": "", "SSH_ASKPASS": ""},
	}
	app, err := pod.Container("app")
	if err != nil {
		t.Fatal(err)
	}
	env, err := pod.Env(app)
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "PATH="+os.Getenv("PATH"), "HOME="+t.TempDir())
	lsRemote := func(url string) error {
		git := exec.Command("git", "ls-remote", url)
		git.Env = env
		return git.Run()
	}
	if err := lsRemote(server.RepoURL("angryninja", "k8s-cluster")); err != nil {
		t.Fatalf("the allowed host did not get the token: %v", err)
	}

	// Another host asks for credentials and records what it is offered.
	var mu sync.Mutex
	var offered []string
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); h != "" {
			b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
			mu.Lock()
			offered = append(offered, string(b))
			mu.Unlock()
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
	}))
	defer other.Close()
	port := other.URL[strings.LastIndex(other.URL, ":")+1:]
	for _, url := range []string{other.URL + "/angryninja/k8s-cluster.git", "https://localhost:" + port + "/angryninja/k8s-cluster.git"} {
		if err := lsRemote(url); err == nil {
			t.Errorf("%s: git succeeded against a host that refuses everyone", url)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range offered {
		if strings.Contains(o, token) {
			t.Errorf("the token was offered to a host that is not allowed: %q", o)
		}
	}
}
