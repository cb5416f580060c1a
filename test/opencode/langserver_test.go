package opencode_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/angryninja/opencode-injector/test/kubelet"
	"github.com/angryninja/opencode-injector/test/opencode"
)

// helmRelease is the workspace's own HelmRelease in the Flux tree, the file
// the language server is asked about.
const helmRelease = "kubernetes/apps/opencode/opencode-flux/app/helmrelease.yaml"

// TestYAMLLanguageServer runs the real OpenCode in the injected flux
// workspace, on a clone of a Flux GitOps tree (this repository's
// deploy/flux, and the real chart's rendered manifests), with the YAML
// language server OpenCode starts for .yaml files, driven without a model
// by OpenCode's own `opencode debug lsp diagnostics` (which opens the file
// in the server and waits for its diagnostics). It asserts the server's
// answer, and logs the memory figures of BENCHMARKS.md ("Sizing a
// workspace"): the OpenCode server idle, and with the language server
// working, as peak RSS of the process trees and, as root on cgroup v1, as
// max_usage_in_bytes of the memory cgroup they run in. It never asserts a
// figure.
func TestYAMLLanguageServer(t *testing.T) {
	bin := opencodeBinary(t)
	servers := yamlServerDir(t)
	pod, app := injectedFluxPod(t)
	worktree := pod.HostPath(app, app.WorkingDir)
	cloneFluxTree(t, worktree)
	env, err := pod.Env(app)
	if err != nil {
		t.Fatal(err)
	}
	configHome := envValue(env, "XDG_CONFIG_HOME")
	if err := opencode.EnableLanguageServers(configHome); err != nil {
		t.Fatal(err)
	}
	extra := map[string]string{"PATH": servers + string(os.PathListSeparator) + os.Getenv("PATH")}
	for k, v := range opencode.Offline {
		extra[k] = v
	}

	cgroup := memoryCgroup(t)
	var wrap []string
	if cgroup != nil {
		wrap = cgroup.Wrap()
	}

	// The pod starts: OpenCode serves the workspace, and the browser's first
	// requests come in. Then it is idle.
	srv, err := opencode.Start(pod, app, bin, extra, wrap...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	idle := opencode.SamplePeak(srv.Cmd.Process.Pid, cgroup, 50*time.Millisecond)
	for _, path := range []string{"/path", "/project/current", "/session", "/config", "/lsp", "/file?path=."} {
		get(t, srv, path, &json.RawMessage{})
	}
	time.Sleep(5 * time.Second) // what OpenCode does just after its start settles
	idlePeak := idle.Stop()
	idleCgroup := cgroupMaxUsage(t, cgroup)

	// The language server at work, in the same cgroup: on a file of the
	// tree as it is, and on the same file after an edit that repeats a key.
	if cgroup != nil {
		if err := cgroup.ResetMaxUsage(); err != nil {
			t.Fatal(err)
		}
	}
	serverBusy := opencode.SamplePeak(srv.Cmd.Process.Pid, cgroup, 50*time.Millisecond)
	var lsp []opencode.Process
	var debugPeak opencode.Peak
	diagnose := func(t *testing.T, file string) []diagnostic {
		t.Helper()
		answer, peak, procs := debugLSP(t, pod, app, bin, extra, wrap, "diagnostics", filepath.Join(worktree, file))
		debugPeak.Tree = max(debugPeak.Tree, peak.Tree)
		lsp = append(lsp, procs...)
		var byFile map[string][]diagnostic
		if err := json.Unmarshal(answer, &byFile); err != nil {
			t.Fatalf("opencode debug lsp diagnostics %s: %v\n%s", file, err, answer)
		}
		got, ok := byFile[filepath.Join(worktree, file)]
		if !ok {
			t.Fatalf("no answer from the language server for %s (is OpenCode's YAML server running?): %s", file, answer)
		}
		return got
	}

	t.Run("the tree as it is", func(t *testing.T) {
		if got := diagnose(t, helmRelease); len(got) != 0 {
			t.Errorf("diagnostics for the repository's own %s: %+v; want none", helmRelease, got)
		}
	})
	t.Run("an edit that repeats a key", func(t *testing.T) {
		path := filepath.Join(worktree, helmRelease)
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(text), "\nkind: HelmRelease\n", "\nkind: HelmRelease\nkind: HelmRelease\n", 1)
		line := strings.Count(edited[:strings.Index(edited, "\nkind: HelmRelease\n")+1], "\n") + 1 // the second kind, 0-based
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		got := diagnose(t, helmRelease)
		t.Logf("the language server's answer for %s: %+v", helmRelease, got)
		found := false
		for _, d := range got {
			found = found || (d.Message == "Map keys must be unique" && d.Range.Start.Line == line && d.Severity == 1)
		}
		if !found {
			t.Errorf("no error \"Map keys must be unique\" on line %d of %s: %+v", line+1, helmRelease, got)
		}
	})

	serverPeak := serverBusy.Stop()
	busyCgroup := cgroupMaxUsage(t, cgroup)
	var yamlServerPeak int64
	for _, p := range lsp {
		if strings.Contains(p.Command, "yaml-language-server") {
			yamlServerPeak = max(yamlServerPeak, p.PeakRSS)
		}
	}
	if yamlServerPeak == 0 {
		t.Fatalf("no yaml-language-server process was seen under opencode debug lsp: %+v", lsp)
	}
	var serverHWM int64 // the kernel's exact high-water mark of the server process since its start
	for _, p := range serverBusy.Processes() {
		if p.PID == srv.Cmd.Process.Pid {
			serverHWM = p.PeakRSS
		}
	}
	t.Logf("opencode %s, yaml-language-server %s on %s", opencode.Version, opencode.YAMLServerVersion, worktree)
	t.Logf("idle server: process tree peak %s (PSS); memory cgroup: max_usage_in_bytes %s, peak working set %s",
		mib(idlePeak.Tree), mib(idleCgroup), mib(idlePeak.WorkingSet))
	t.Logf("server while the language server works: process tree peak %s (PSS); the server process's VmHWM since start %s",
		mib(serverPeak.Tree), mib(serverHWM))
	t.Logf("opencode debug lsp (a second OpenCode instance and the language server): process tree peak %s (PSS); yaml-language-server's VmHWM %s",
		mib(debugPeak.Tree), mib(yamlServerPeak))
	t.Logf("server + language server, what the pod holds when the agent opens YAML files: at most %s (the two VmHWM)",
		mib(serverHWM+yamlServerPeak))
	t.Logf("memory cgroup with server + opencode debug lsp + language server: max_usage_in_bytes %s, peak working set %s",
		mib(busyCgroup), mib(serverPeak.WorkingSet))
}

// diagnostic is an LSP diagnostic as `opencode debug lsp diagnostics`
// prints it.
type diagnostic struct {
	Range struct {
		Start struct{ Line, Character int }
	}
	Message  string
	Severity int
	Source   string
}

// yamlServerDir installs (once) or finds the pinned yaml-language-server;
// like the real OpenCode, its absence fails in CI and skips elsewhere.
func yamlServerDir(t *testing.T) string {
	t.Helper()
	dir, err := opencode.YAMLServer(os.Stderr)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the YAML language server is not available, and CI must run it: %v", err)
		}
		t.Skipf("the YAML language server is not available: %v", err)
	}
	return dir
}

// fluxDeployment is the flux workspace's Deployment, as the real chart
// renders it.
func fluxDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	rendered, err := os.ReadFile("../fixtures/app-template/flux.rendered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := manifest.FirstDeployment(rendered)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// injectedFluxPod is the flux workspace fixture as the webhook injects it,
// with its claim and its Secret's password on the host.
func injectedFluxPod(t *testing.T) (*kubelet.Pod, corev1.Container) {
	t.Helper()
	injected, _, err := injection.Mutate(fluxDeployment(t), nil, injection.DefaultSettings(injection.ImageRepository+":v0.0.0-test"))
	if err != nil {
		t.Fatal(err)
	}
	pod := &kubelet.Pod{
		Spec:    injected.Spec.Template.Spec,
		Secret:  map[string]string{contract.SecretKeyPassword: password},
		Volumes: map[string]string{contract.DataVolumeName: t.TempDir()},
	}
	app, err := pod.Container("app")
	if err != nil {
		t.Fatal(err)
	}
	return pod, app
}

// cloneFluxTree makes worktree the clone the seed would have made of a
// Flux GitOps repository: deploy/flux's tree, with the real chart's
// rendered manifests beside it, committed.
func cloneFluxTree(t *testing.T, worktree string) {
	t.Helper()
	for dst, src := range map[string]string{worktree: "../../deploy/flux", filepath.Join(worktree, "rendered"): "../fixtures/app-template"} {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatalf("copy %s: %v", src, err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "the cluster"}} {
		if err := gitserver.Git(worktree, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// memoryCgroup is a fresh cgroup v1 memory child for the measured
// processes, or nil (with the reason logged) where none can be made; the
// OpenCode and Node binaries leave the page cache first, so the cgroup is
// charged for reading them as a container on a fresh node is.
func memoryCgroup(t *testing.T) *opencode.MemoryCgroup {
	t.Helper()
	cg, err := opencode.NewMemoryCgroup(fmt.Sprintf("opencode-injector-test-%d", os.Getpid()))
	if err != nil {
		t.Logf("no memory cgroup figures: %v", err)
		return nil
	}
	t.Cleanup(func() {
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	})
	node, _ := exec.LookPath("node")
	bin, _ := opencode.Binary(os.Stderr)
	if err := opencode.EvictFromPageCache(bin, node); err != nil {
		t.Log(err)
	}
	return cg
}

func cgroupMaxUsage(t *testing.T, cg *opencode.MemoryCgroup) int64 {
	t.Helper()
	if cg == nil {
		return 0
	}
	n, err := cg.MaxUsage()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// debugLSP runs `opencode debug lsp <args>` in the app container (its env,
// its workingDir), wrapped like the server, and returns what it printed,
// the peak of its process tree, and the processes seen in that tree.
func debugLSP(t *testing.T, pod *kubelet.Pod, app corev1.Container, bin string, extra map[string]string, wrap []string, args ...string) ([]byte, opencode.Peak, []opencode.Process) {
	t.Helper()
	cmd, err := pod.Command(app, bin)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Args = append([]string{bin, "debug", "lsp"}, args...)
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if len(wrap) > 0 {
		cmd.Args = append(append([]string{}, wrap...), cmd.Args...)
		if cmd.Path, err = exec.LookPath(wrap[0]); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sampler := opencode.SamplePeak(cmd.Process.Pid, nil, 50*time.Millisecond)
	err = cmd.Wait()
	peak := sampler.Stop()
	procs := sampler.Processes()
	for _, p := range procs {
		t.Logf("  process %d, peak RSS %s: %s", p.PID, mib(p.PeakRSS), p.Command)
	}
	if err != nil {
		t.Fatalf("opencode debug lsp %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return []byte(stdout.String()), peak, procs
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
