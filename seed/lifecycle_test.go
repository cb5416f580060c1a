package seed_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/webhook"
)

// pod plays the kubelet for the containers `inject` produces: env resolved
// from a Secret, the claim and the Secret volume mapped to directories.
type pod struct {
	t       *testing.T
	spec    corev1.PodSpec
	secret  map[string]string
	mounts  map[string]string // volume name -> host directory
	baseEnv map[string]string // what the image itself provides
}

func (p *pod) container(name string, init bool) corev1.Container {
	cs := p.spec.Containers
	if init {
		cs = p.spec.InitContainers
	}
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	p.t.Fatalf("no container %s", name)
	return corev1.Container{}
}

// hostPath maps a path inside container c to the host.
func (p *pod) hostPath(c corev1.Container, path string) string {
	for _, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/") {
			return p.mounts[m.Name] + strings.TrimPrefix(path, m.MountPath)
		}
	}
	return path
}

// env resolves c's env the way the kubelet does, mapping paths.
func (p *pod) env(c corev1.Container) map[string]string {
	env := map[string]string{}
	for k, v := range p.baseEnv {
		env[k] = v
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			val, ok := p.secret[ref.Key]
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				p.t.Fatalf("CreateContainerConfigError: key %s missing from Secret %s", ref.Key, ref.Name)
			}
			if ok {
				env[e.Name] = val
			}
		case strings.HasPrefix(e.Value, "/"):
			env[e.Name] = p.hostPath(c, e.Value)
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

// start runs the init container's command as the kubelet would.
func (p *pod) start() result {
	seed := p.container(webhook.SeedContainerName, true)
	if len(seed.Command) != 1 || seed.Command[0] != webhook.SeedBinaryPath || !reflect.DeepEqual(seed.Args, []string{"seed"}) {
		p.t.Fatalf("unexpected seed command %v %v", seed.Command, seed.Args)
	}
	return runSeed(p.t, p.env(seed), nil, seed.Args[1:]...)
}

// TestPodLifecycle: the flux workspace as injected, started, used, deleted
// and started again: sessions, login and code survive, nothing is cloned
// twice, and git inside the workspace works with the token from env only.
func TestPodLifecycle(t *testing.T) {
	manifest, err := os.ReadFile("../test/fixtures/app-template/flux.rendered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := webhook.FirstDeployment(manifest)
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations[webhook.AnnotationRepo] = server.RepoURL("angryninja", "k8s-cluster")
	s := webhook.DefaultSettings("example.com/seed:test")
	s.AllowedGitHosts = []string{server.Host}
	injected, _, err := webhook.Inject(d, s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secretDir := filepath.Join(dir, "secret")
	const login = `{"github-copilot":{"type":"oauth","refresh":"gho_from_secret"}}`
	write(t, filepath.Join(secretDir, "auth.json"), login)
	p := &pod{
		t:       t,
		spec:    injected.Spec.Template.Spec,
		secret:  map[string]string{"OPENCODE_SERVER_PASSWORD": "hunter2", "GITHUB_TOKEN": token, "auth.json": login},
		mounts:  map[string]string{webhook.DataVolumeName: filepath.Join(dir, "claim"), webhook.AuthVolumeName: secretDir},
		baseEnv: map[string]string{"SSL_CERT_FILE": server.CAFile},
	}
	if err := os.MkdirAll(p.mounts[webhook.DataVolumeName], 0o755); err != nil {
		t.Fatal(err)
	}

	p.start().want(t, 0, "cloned", "auth.json: seeded")

	// OpenCode runs: it writes its session database, refreshes the login
	// and edits code in its working directory.
	app := p.container("app", false)
	appEnv := p.env(app)
	if appEnv["OPENCODE_SERVER_PASSWORD"] != "hunter2" {
		t.Error("the password does not reach OpenCode")
	}
	workdir := p.hostPath(app, app.WorkingDir)
	dataDir := filepath.Join(appEnv["XDG_DATA_HOME"], "opencode")
	sessionDB := filepath.Join(dataDir, "storage", "session.db")
	write(t, sessionDB, "sessions")
	refreshed := `{"github-copilot":{"type":"oauth","refresh":"gho_refreshed_by_opencode"}}`
	write(t, filepath.Join(dataDir, "auth.json"), refreshed)
	write(t, filepath.Join(workdir, "dir0", "file0.txt"), "edited in OpenCode\n")

	// A manual git fetch inside the workspace authenticates through the
	// injected credential helper, with the token only in env.
	git := exec.Command("git", "fetch", "origin")
	git.Dir = workdir
	// Debian's git (GnuTLS) reads its CA from GIT_SSL_CAINFO, not SSL_CERT_FILE.
	git.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_SSL_CAINFO=" + server.CAFile}
	for k, v := range appEnv {
		git.Env = append(git.Env, k+"="+v)
	}
	if out, err := git.CombinedOutput(); err != nil {
		t.Errorf("git fetch in the workspace: %v: %s", err, out)
	}
	assertNoToken(t, p.mounts[webhook.DataVolumeName])

	// The pod is deleted and scheduled again on the same claim.
	claimBefore, requests := snapshot(t, p.mounts[webhook.DataVolumeName]), server.Requests()
	p.start().want(t, 0, "repository present", "auth.json: kept")
	if n := server.Requests() - requests; n != 0 {
		t.Errorf("the restart made %d requests to the git server", n)
	}
	if !reflect.DeepEqual(claimBefore, snapshot(t, p.mounts[webhook.DataVolumeName])) {
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
