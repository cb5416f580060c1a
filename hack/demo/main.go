// Command demo shows opencode-injector at work on a control plane it starts
// itself: kube-apiserver and etcd built from Go modules, the webhook
// registered from deploy/, and the flux workspace fixture created through
// the API as Flux would create it. Run it with `make demo`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/angryninja/opencode-injector/test/kubelet"
	"github.com/angryninja/opencode-injector/test/opencode"
	"github.com/angryninja/opencode-injector/test/testenv"
)

type warningPrinter struct{}

func (warningPrinter) HandleWarningHeader(_ int, _ string, msg string) {
	fmt.Println("  warning from the API server:", msg)
}

func main() {
	keep := flag.Bool("keep", false, "keep the control plane running and write a kubeconfig for kubectl")
	flag.Parse()
	// The control plane and the webhook log through controller-runtime;
	// the account below is the demo's own, so only their errors show.
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err := run(*keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(keep bool) error {
	ctx := context.Background()
	root, err := testenv.Root()
	if err != nil {
		return err
	}
	demoDir := filepath.Join(root, ".demo")
	if err := os.RemoveAll(demoDir); err != nil {
		return err
	}
	if err := os.MkdirAll(demoDir, 0o755); err != nil {
		return err
	}
	step("Starting a git server (git http-backend over HTTPS, basic auth) on 127.0.0.1 with a demo repository")
	repos := filepath.Join(demoDir, "repos")
	if err := gitserver.MakeRepo(repos, "angryninja", "k8s-cluster", 200, 5); err != nil {
		return err
	}
	git, err := gitserver.Start(repos, demoToken, demoDir)
	if err != nil {
		return err
	}
	defer git.Close()
	fmt.Println("  serving", git.RepoURL("angryninja", "k8s-cluster"))

	step("Starting kube-apiserver and etcd (built from the Go module proxy on the first run, then cached)")
	settings := injection.DefaultSettings(injection.ImageRepository + ":demo")
	settings.AllowedGitHosts = append(settings.AllowedGitHosts, git.Host)
	env, err := testenv.Start(root, settings)
	if err != nil {
		return err
	}
	defer func() {
		step("Shutting the control plane down")
		_ = env.Stop()
	}()
	fmt.Println("  webhook registered from deploy/mutatingwebhookconfiguration.yaml, served by the injector on 127.0.0.1")

	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warningPrinter{}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "opencode"}}); err != nil {
		return err
	}
	rendered, err := os.ReadFile(filepath.Join(root, "test", "fixtures", "app-template", "flux.rendered.yaml"))
	if err != nil {
		return err
	}
	d, err := manifest.FirstDeployment(rendered)
	if err != nil {
		return err
	}
	chart := d.DeepCopy() // Create fills d with what the API server stored
	step("Creating Deployment opencode/" + d.Name + " (app-template 4.1.1 output, label " + contract.LabelInject + "=true, repo " + d.Annotations[contract.AnnotationRepo] + ")")
	if err := c.Create(ctx, d); err != nil {
		return err
	}
	got := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(d), got); err != nil {
		return err
	}
	step("What the webhook added")
	describe(got)
	out := filepath.Join(demoDir, d.Name+".injected.yaml")
	got.ManagedFields = nil
	y, err := manifest.EncodeYAML(got)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, y, 0o644); err != nil {
		return err
	}
	fmt.Println("\n  the whole stored Deployment:", out)

	if err := podLifecycle(ctx, c, root, demoDir, chart, git); err != nil {
		return err
	}
	if keep {
		return wait(env, root)
	}
	return nil
}

func describe(d *appsv1.Deployment) {
	ps := d.Spec.Template.Spec
	pod := &kubelet.Pod{Spec: ps}
	seed := ps.InitContainers[0]
	fmt.Printf("  init container %s: image %s, command %s %s, runs as uid %d\n",
		seed.Name, seed.Image, strings.Join(seed.Command, " "), strings.Join(seed.Args, " "), *seed.SecurityContext.RunAsUser)
	for _, e := range seed.Env {
		fmt.Printf("    env %s=%s\n", e.Name, envValue(pod, seed, e))
	}
	for _, v := range ps.Volumes {
		if v.PersistentVolumeClaim != nil {
			fmt.Printf("  volume %s: PersistentVolumeClaim %s, mounted at %s\n", v.Name, v.PersistentVolumeClaim.ClaimName, contract.DataMountPath)
		}
		if v.Secret != nil {
			fmt.Printf("  volume %s: key %s of Secret %s (optional), read-only in %s only\n", v.Name, contract.SecretKeyAuth, v.Secret.SecretName, seed.Name)
		}
	}
	app := ps.Containers[0]
	fmt.Printf("  container %s: workingDir %s\n", app.Name, app.WorkingDir)
	for _, e := range app.Env {
		fmt.Printf("    env %s=%s\n", e.Name, envValue(pod, app, e))
	}
	fmt.Printf("    resources: requests %s, limits %s\n", injection.FormatResources(app.Resources.Requests), injection.FormatResources(app.Resources.Limits))
	fmt.Printf("  strategy: %s, replicas %d\n", d.Spec.Strategy.Type, *d.Spec.Replicas)
	fmt.Printf("  annotation %s: %s\n", contract.AnnotationInjected, d.Annotations[contract.AnnotationInjected])
}

// envValue is what container c sees in e: the value, the Secret key it
// comes from, or what the downward API fills in.
func envValue(pod *kubelet.Pod, c corev1.Container, e corev1.EnvVar) string {
	if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
		ref := e.ValueFrom.ResourceFieldRef
		v, err := pod.ResourceFieldValue(c, ref)
		if err != nil {
			return "<downward API: " + err.Error() + ">"
		}
		return v + " <downward API: " + ref.Resource + " of " + ref.ContainerName + ">"
	}
	if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
		r := e.ValueFrom.SecretKeyRef
		opt := ""
		if r.Optional != nil && *r.Optional {
			opt = ", optional"
		}
		return fmt.Sprintf("<Secret %s key %s%s>", r.Name, r.Key, opt)
	}
	return e.Value
}

func wait(env *testenv.Env, root string) error {
	user, err := env.Env.AddUser(envtest.User{Name: "demo", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	path := filepath.Join(root, ".demo", "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return err
	}
	step("Running until Ctrl-C. Try:")
	fmt.Printf("  export KUBECONFIG=%s\n  kubectl -n opencode get deployment opencode-flux -o yaml\n", path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

func step(s string) { fmt.Println("\n==> " + s) }

const demoToken = "demo-token-never-printed"

// podLifecycle runs the seed of a workspace whose repo is on the local git
// server, the way the kubelet would, then "deletes the pod" and starts it
// again.
func podLifecycle(ctx context.Context, c client.Client, root, demoDir string, flux *appsv1.Deployment, git *gitserver.Server) error {
	d := flux.DeepCopy()
	d.ObjectMeta = metav1.ObjectMeta{
		Name: "opencode-demo", Namespace: flux.Namespace, Labels: flux.Labels,
		Annotations: map[string]string{contract.AnnotationRepo: git.RepoURL("angryninja", "k8s-cluster")},
	}
	step("Creating Deployment opencode/opencode-demo, repo " + d.Annotations[contract.AnnotationRepo])
	if err := c.Create(ctx, d); err != nil {
		return err
	}
	stored := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(d), stored); err != nil {
		return err
	}
	binary := filepath.Join(demoDir, "opencode-injector")
	build := exec.Command("go", "build", "-o", binary, "./cmd/opencode-injector")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the seed binary: %w", err)
	}
	claim := filepath.Join(demoDir, "claim")
	secret := filepath.Join(demoDir, "secret")
	for _, dir := range []string{claim, secret} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(secret, contract.AuthFileName), []byte(`{"github-copilot":{"type":"oauth"}}`), 0o600); err != nil {
		return err
	}
	pod := &kubelet.Pod{
		Spec:    stored.Spec.Template.Spec,
		Secret:  map[string]string{contract.SecretKeyPassword: "demo", contract.SecretKeyToken: demoToken},
		Volumes: map[string]string{contract.DataVolumeName: claim, contract.AuthVolumeName: secret},
		Image:   map[string]string{"SSL_CERT_FILE": git.CAFile},
	}
	seedC, err := pod.Container(contract.SeedContainerName)
	if err != nil {
		return err
	}
	start := func(title string) error {
		step(title)
		cmd, err := pod.Command(seedC, binary)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		before := git.Requests()
		err = cmd.Run()
		fmt.Printf("  requests to the git server: %d\n", git.Requests()-before)
		return err
	}
	fmt.Printf("  claim %s is mounted at %s; the Secret's auth.json at %s\n", claim, contract.DataMountPath, contract.AuthMountPath)
	if err := start("Pod start: opencode-seed runs as the kubelet would run it"); err != nil {
		return err
	}
	app, err := pod.Container(stored.Spec.Template.Spec.Containers[0].Name)
	if err != nil {
		return err
	}
	bin, err := opencode.Binary(os.Stdout)
	if err != nil {
		return fmt.Errorf("the real OpenCode: %w", err)
	}
	srv, err := startOpenCode(pod, app, bin)
	if err != nil {
		return err
	}
	code, _, err := srv.Request(http.MethodGet, "/path", nil, false)
	if err != nil || code != http.StatusUnauthorized {
		_ = srv.Stop()
		return fmt.Errorf("OpenCode without the password answered %d, %v; want 401", code, err)
	}
	fmt.Println("  GET /path without the password: 401")
	code, body, err := srv.Request(http.MethodGet, "/path", nil, true)
	if err != nil || code != http.StatusOK {
		_ = srv.Stop()
		return fmt.Errorf("OpenCode with the password answered %d, %v", code, err)
	}
	fmt.Printf("  GET /path with the password: %d %s\n", code, body)
	code, body, err = srv.Request(http.MethodPost, "/session", map[string]string{"title": "demo session"}, true)
	var session struct{ ID, Title string }
	if err == nil && code == http.StatusOK {
		err = json.Unmarshal(body, &session)
	}
	if err != nil || session.ID == "" {
		_ = srv.Stop()
		return fmt.Errorf("POST /session: %d, %v: %s", code, err, body)
	}
	fmt.Printf("  POST /session: created %s %q\n", session.ID, session.Title)
	if err := srv.Stop(); err != nil {
		return err
	}
	fmt.Println("  OpenCode stopped (SIGTERM, as when the pod is deleted)")

	if err := start("Pod deleted and started again on the same claim"); err != nil {
		return err
	}
	if srv, err = startOpenCode(pod, app, bin); err != nil {
		return err
	}
	defer srv.Stop()
	code, body, err = srv.Request(http.MethodGet, "/session/"+session.ID, nil, true)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("the session did not survive: GET /session/%s: %d, %v: %s", session.ID, code, err, body)
	}
	fmt.Printf("  GET /session/%s: %d, the session is there again; the clone was not fetched again\n", session.ID, code)
	return nil
}

// startOpenCode runs the real OpenCode server as the pod's OpenCode
// container, on 127.0.0.1 (`serve`: `web` would also open a browser).
func startOpenCode(pod *kubelet.Pod, app corev1.Container, bin string) (*opencode.Server, error) {
	srv, err := opencode.Start(pod, app, bin, opencode.Offline)
	if err != nil {
		return nil, err
	}
	fmt.Printf("  OpenCode %s serving the workspace on %s (workingDir %s)\n", opencode.Version, srv.URL, pod.HostPath(app, app.WorkingDir))
	return srv, nil
}
