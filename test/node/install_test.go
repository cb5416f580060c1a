package node_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/certmanager"
	"github.com/angryninja/opencode-injector/test/node"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// crdsEnv carries the cert-manager CRD files (in the Go module cache,
// downloaded by prepare) into the namespaces.
const crdsEnv = "OPENCODE_NODE_CRDS"

// injectorNamespace is deploy/'s namespace.
const injectorNamespace = "opencode-system"

// installOverlay is all the install changes in deploy/: the image, pinned
// to the digest of the one built here, with kustomize's images: (so the
// kubelet reports that digest and the injector resolves its seed image
// from it), and the suite's git host added to --allowed-git-hosts, as the
// README's "Self-hosted git" tells a user (the patch's test fails when
// deploy/ moves that argument). The other arguments are deploy/'s.
const installOverlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
images:
  - name: %s
    digest: %s
patches:
  - target: {kind: Deployment, name: opencode-injector}
    patch: |-
      - op: test
        path: /spec/template/spec/containers/0/args/7
        value: --allowed-git-hosts=github.com
      - op: replace
        path: /spec/template/spec/containers/0/args/7
        value: --allowed-git-hosts=github.com,%s
`

var (
	installOnce sync.Once
	installErr  error
	// certManager runs for the rest of the run once installed.
	certManager *certmanager.CertManager
)

// installInjector installs the injector from deploy/, once per run: the
// cert-manager CRDs, cert-manager's controllers and CA injector (in this
// process, as test/certmanager runs them), then deploy/ with the image
// pinned to our build, and waits until its Deployment is available.
func installInjector(t *testing.T, c *node.Cluster) client.Client {
	t.Helper()
	digest := importOurImages(t, c)
	gitHost := gitServer(t).Host
	cl, err := client.New(c.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	installOnce.Do(func() { installErr = install(c, cl, digest, gitHost) })
	if installErr != nil {
		t.Fatal(installErr)
	}
	return cl
}

func install(c *node.Cluster, cl client.Client, digest, gitHost string) error {
	ctx := context.Background()
	if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
		Paths: strings.Split(os.Getenv(crdsEnv), string(os.PathListSeparator)), ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("install cert-manager's CRDs: %w", err)
	}
	cm, err := certmanager.Start(c.Kubeconfig, c.Config)
	if err != nil {
		return err
	}
	certManager = cm
	return applyInstall(ctx, c, cl, digest, gitHost)
}

// applyInstall applies deploy/ with the image pinned to digest and gitHost
// allowed, as `kubectl apply --server-side` does, and waits until the
// injector's Deployment is available: the install, and an upgrade.
func applyInstall(ctx context.Context, c *node.Cluster, cl client.Client, digest, gitHost string) error {
	docs, err := renderInstall(digest, gitHost)
	if err != nil {
		return err
	}
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return err
		}
		if err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	_, err = waitAvailable(ctx, c, injectorNamespace, "opencode-injector", 3*time.Minute)
	return err
}

// renderInstall is deploy/ through installOverlay.
func renderInstall(digest, gitHost string) ([][]byte, error) {
	dir, err := os.MkdirTemp(node.WorkDir(), "install-")
	if err != nil {
		return nil, err
	}
	deploy, err := filepath.Abs(filepath.Join("..", "..", "deploy"))
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(dir, deploy)
	if err != nil {
		return nil, err
	}
	overlay := fmt.Appendf(nil, installOverlay, rel, node.InjectorImageRepo, digest, gitHost)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), overlay, 0o644); err != nil {
		return nil, err
	}
	return testenv.Render(dir)
}

// waitAvailable waits until every replica of the Deployment is updated and
// available, and returns it.
func waitAvailable(ctx context.Context, c *node.Cluster, ns, name string, timeout time.Duration) (*appsv1.Deployment, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && d.Status.ObservedGeneration == d.Generation && d.Spec.Replicas != nil &&
			d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas {
			return d, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("deployment %s/%s not available after %s: %v %+v\n%s", ns, name, timeout, err, d.Status, podsStatus(ctx, c, ns))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// podsStatus describes the Pods of ns, for a failure message.
func podsStatus(ctx context.Context, c *node.Cluster, ns string) string {
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: %s %+v %+v\n", p.Name, p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
	}
	return b.String()
}

// TestInstall installs the injector from deploy/ on the node: cert-manager
// issues its certificate, its Pods run our image and resolve the seed
// image from the digest the kubelet reports, and the API server reaches the
// webhook through the Service's endpoints: a labeled Deployment is
// injected with that seed image.
func TestInstall(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	cl := installInjector(t, c)
	// The image installed now: TestWorkspace's day 2 may have upgraded it.
	installed, err := c.Client.AppsV1().Deployments(injectorNamespace).Get(ctx, "opencode-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := installed.Spec.Template.Spec.Containers[0].Image
	if !strings.HasPrefix(want, node.InjectorImageRepo+"@sha256:") {
		t.Fatalf("the injector's image is %s, want %s pinned to a digest", want, node.InjectorImageRepo)
	}
	pods, err := c.Client.CoreV1().Pods(injectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=opencode-injector"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d injector pods, want deploy/'s 2", len(pods.Items))
	}
	for _, p := range pods.Items {
		if got := p.Status.ContainerStatuses[0].ImageID; got != want {
			t.Errorf("pod %s: the kubelet reports %q, want %q", p.Name, got, want)
		}
		logs, err := c.Logs(ctx, injectorNamespace, p.Name, "injector")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "the seed image follows the injector's own image") || !strings.Contains(logs, want) {
			t.Errorf("pod %s's log does not show the seed image %s it resolved:\n%s", p.Name, want, logs)
		}
	}

	ns := "install-check"
	if err := c.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	d := fixtureDeployment(t, "flux", ns)
	if err := cl.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	var created appsv1.Deployment
	if err := cl.Get(ctx, client.ObjectKeyFromObject(d), &created); err != nil {
		t.Fatal(err)
	}
	if len(created.Spec.Template.Spec.InitContainers) == 0 || created.Spec.Template.Spec.InitContainers[0].Image != want {
		t.Fatalf("the labeled Deployment was not injected with seed image %s: %+v", want, created.Spec.Template.Spec.InitContainers)
	}
}

// fixtureDeployment is the Deployment the real app-template chart renders
// for the example name (test/fixtures/app-template), placed in ns.
func fixtureDeployment(t *testing.T, name, ns string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", "app-template", name+".rendered.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.SplitYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		if !bytes.Contains(doc, []byte("kind: Deployment")) {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if u.GetKind() == "Deployment" {
			u.SetNamespace(ns)
			if u.GetLabels()[contract.LabelInject] != "true" {
				t.Fatalf("fixture %s's Deployment is not labeled", name)
			}
			return u
		}
	}
	t.Fatalf("no Deployment in fixture %s", name)
	return nil
}
