package seed_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/kubelet"
)

// TestPodLifecycle: the flux workspace as injected, started, used, deleted
// and started again: sessions, login and code survive, nothing is cloned
// twice, and git inside the workspace works with the token from env only.
func TestPodLifecycle(t *testing.T) {
	injected := injectedFlux(t)
	dir := t.TempDir()
	claim, secretDir := filepath.Join(dir, "claim"), filepath.Join(dir, "secret")
	const login = `{"github-copilot":{"type":"oauth","refresh":"gho_from_secret"}}`
	write(t, filepath.Join(secretDir, "auth.json"), login)
	if err := os.MkdirAll(claim, 0o755); err != nil {
		t.Fatal(err)
	}
	pod := &kubelet.Pod{
		Spec:    injected.Spec.Template.Spec,
		Secret:  map[string]string{"OPENCODE_SERVER_PASSWORD": "hunter2", "GITHUB_TOKEN": token, "auth.json": login},
		Volumes: map[string]string{contract.DataVolumeName: claim, contract.AuthVolumeName: secretDir},
		// The image's trust store; Debian's git (GnuTLS) reads GIT_SSL_CAINFO.
		Image: map[string]string{"SSL_CERT_FILE": server.CAFile, "GIT_SSL_CAINFO": server.CAFile, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"},
	}
	seedC, err := pod.Container(contract.SeedContainerName)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seedC.Command, []string{contract.SeedBinaryPath}) || !reflect.DeepEqual(seedC.Args, []string{"seed"}) {
		t.Fatalf("the init container runs %v %v", seedC.Command, seedC.Args)
	}
	start := func() result {
		t.Helper()
		cmd, err := pod.Command(seedC, binary)
		if err != nil {
			t.Fatal(err)
		}
		return run(t, cmd)
	}
	start().want(t, 0, "cloned", "auth.json: seeded")

	// OpenCode runs: it writes its session database, refreshes the login
	// and edits code in its working directory.
	app, err := pod.Container("app")
	if err != nil {
		t.Fatal(err)
	}
	appEnv, err := pod.Env(app)
	if err != nil {
		t.Fatal(err)
	}
	env := envMap(appEnv)
	if env["OPENCODE_SERVER_PASSWORD"] != "hunter2" {
		t.Error("the password does not reach OpenCode")
	}
	workdir := pod.HostPath(app, app.WorkingDir)
	dataDir := filepath.Join(env["XDG_DATA_HOME"], "opencode")
	sessionDB := filepath.Join(dataDir, "storage", "session.db")
	write(t, sessionDB, "sessions")
	refreshed := `{"github-copilot":{"type":"oauth","refresh":"gho_refreshed_by_opencode"}}`
	write(t, filepath.Join(dataDir, "auth.json"), refreshed)
	write(t, filepath.Join(workdir, "dir0", "file0.txt"), "edited in OpenCode\n")

	// A manual git fetch inside the workspace authenticates through the
	// injected credential helper, with the token only in env.
	git := exec.Command("git", "fetch", "origin")
	git.Dir, git.Env = workdir, append(appEnv, "PATH="+os.Getenv("PATH"))
	if out, err := git.CombinedOutput(); err != nil {
		t.Errorf("git fetch in the workspace: %v: %s", err, out)
	}
	assertNoToken(t, claim)

	// The pod is deleted and scheduled again on the same claim.
	claimBefore, requests := snapshot(t, claim), server.Requests()
	start().want(t, 0, "repository present", "auth.json: kept")
	if n := server.Requests() - requests; n != 0 {
		t.Errorf("the restart made %d requests to the git server", n)
	}
	if !reflect.DeepEqual(claimBefore, snapshot(t, claim)) {
		t.Error("the restart changed the claim")
	}
	for path, want := range map[string]string{
		sessionDB: "sessions", filepath.Join(dataDir, "auth.json"): refreshed,
		filepath.Join(workdir, "dir0", "file0.txt"): "edited in OpenCode\n",
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", path, b, err, want)
		}
	}
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// injectedFlux is the flux fixture injected with its repo on the test's git
// server, the only allowed host.
func injectedFlux(t *testing.T) *appsv1.Deployment {
	t.Helper()
	rendered, err := os.ReadFile("../test/fixtures/app-template/flux.rendered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := manifest.FirstDeployment(rendered)
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations[contract.AnnotationRepo] = server.RepoURL("angryninja", "k8s-cluster")
	s := injection.DefaultSettings("example.com/seed:test")
	s.AllowedGitHosts = []string{server.Host}
	injected, _, err := injection.Mutate(d, nil, s)
	if err != nil {
		t.Fatal(err)
	}
	return injected
}
