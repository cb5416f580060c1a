// Command demo shows opencode-injector at work on a control plane it starts
// itself: kube-apiserver and etcd built from Go modules, the webhook
// registered from deploy/, and the flux workspace fixture created through
// the API as Flux would create it. Run it with `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

type warningPrinter struct{}

func (warningPrinter) HandleWarningHeader(_ int, _ string, msg string) {
	fmt.Println("  warning from the API server:", msg)
}

func main() {
	keep := flag.Bool("keep", false, "keep the control plane running and write a kubeconfig for kubectl")
	flag.Parse()
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
	step("Starting kube-apiserver and etcd (built from the Go module proxy on the first run, then cached)")
	env, err := testenv.Start(root, webhook.DefaultSettings(webhook.ImageRepository+":demo"))
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
	manifest, err := os.ReadFile(filepath.Join(root, "test", "fixtures", "app-template", "flux.rendered.yaml"))
	if err != nil {
		return err
	}
	d, err := webhook.FirstDeployment(manifest)
	if err != nil {
		return err
	}
	step("Creating Deployment opencode/" + d.Name + " (app-template 4.1.1 output, label " + webhook.LabelInject + "=true, repo " + d.Annotations[webhook.AnnotationRepo] + ")")
	if err := c.Create(ctx, d); err != nil {
		return err
	}
	got := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(d), got); err != nil {
		return err
	}
	step("What the webhook added")
	describe(got)
	out := filepath.Join(root, ".demo", d.Name+".injected.yaml")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	got.ManagedFields = nil
	y, err := webhook.EncodeYAML(got)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, y, 0o644); err != nil {
		return err
	}
	fmt.Println("\n  the whole stored Deployment:", out)

	if keep {
		return wait(env, root)
	}
	return nil
}

func describe(d *appsv1.Deployment) {
	ps := d.Spec.Template.Spec
	seed := ps.InitContainers[0]
	fmt.Printf("  init container %s: image %s, command %s %s, runs as uid %d\n",
		seed.Name, seed.Image, strings.Join(seed.Command, " "), strings.Join(seed.Args, " "), *seed.SecurityContext.RunAsUser)
	for _, e := range seed.Env {
		fmt.Printf("    env %s=%s\n", e.Name, envValue(e))
	}
	for _, v := range ps.Volumes {
		if v.PersistentVolumeClaim != nil {
			fmt.Printf("  volume %s: PersistentVolumeClaim %s, mounted at %s\n", v.Name, v.PersistentVolumeClaim.ClaimName, webhook.DataMountPath)
		}
		if v.Secret != nil {
			fmt.Printf("  volume %s: key %s of Secret %s (optional), read-only in %s only\n", v.Name, webhook.SecretKeyAuth, v.Secret.SecretName, seed.Name)
		}
	}
	app := ps.Containers[0]
	fmt.Printf("  container %s: workingDir %s\n", app.Name, app.WorkingDir)
	for _, e := range app.Env {
		fmt.Printf("    env %s=%s\n", e.Name, envValue(e))
	}
	fmt.Printf("    resources: requests %s, limits %s\n", webhook.FormatResources(app.Resources.Requests), webhook.FormatResources(app.Resources.Limits))
	fmt.Printf("  strategy: %s, replicas %d\n", d.Spec.Strategy.Type, *d.Spec.Replicas)
	fmt.Printf("  annotation %s: %s\n", webhook.AnnotationInjected, d.Annotations[webhook.AnnotationInjected])
}

func envValue(e corev1.EnvVar) string {
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
