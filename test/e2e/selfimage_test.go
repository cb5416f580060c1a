package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

const (
	mirrorRepo = "registry.example.org/mirror/opencode-injector"
	digestA    = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

func TestPinnedImage(t *testing.T) {
	for _, c := range []struct{ spec, imageID, want string }{
		{"ghcr.io/angryninja/opencode-injector:v0.2.0", "ghcr.io/angryninja/opencode-injector@" + digestA, "ghcr.io/angryninja/opencode-injector@" + digestA},
		// The Pod's own repository wins over the one the runtime resolved (a mirror).
		{mirrorRepo + ":v9", "ghcr.io/angryninja/opencode-injector@" + digestA, mirrorRepo + "@" + digestA},
		{"localhost:5000/injector:dev", "docker-pullable://localhost:5000/injector@" + digestA, "localhost:5000/injector@" + digestA},
		{"localhost:5000/injector", "localhost:5000/injector@" + digestA, "localhost:5000/injector@" + digestA},
		{"ghcr.io/angryninja/opencode-injector:v0.2.0@" + digestA, "ghcr.io/angryninja/opencode-injector@" + digestA, "ghcr.io/angryninja/opencode-injector@" + digestA},
	} {
		got, err := app.PinnedImage(c.spec, c.imageID)
		if err != nil || got != c.want {
			t.Errorf("PinnedImage(%q, %q) = %q, %v; want %q", c.spec, c.imageID, got, err, c.want)
		}
	}
	// An image loaded onto the node has no registry digest: no guess.
	if got, err := app.PinnedImage("injector:dev", digestA); err == nil {
		t.Errorf("an image ID without a registry digest gave %q", got)
	}
}

// deployOverlay renders deploy/ under a kustomize overlay that moves the
// injector to a mirror with `images:`, the way a user would.
func deployOverlay(t *testing.T) [][]byte {
	t.Helper()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(root, "deploy")) // kustomize takes no absolute base
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
images:
  - name: ghcr.io/angryninja/opencode-injector
    newName: %s
    newTag: v9.9.9
`, base, mirrorRepo)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	docs, err := testenv.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// injectorPod is a Pod the way the ReplicaSet controller would create it
// from the rendered Deployment (envtest runs no controllers).
func injectorPod(t *testing.T, docs [][]byte) *corev1.Pod {
	t.Helper()
	for _, doc := range docs {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-7d9c5-x2x4q", Namespace: d.Namespace, Labels: d.Spec.Template.Labels},
			Spec:       d.Spec.Template.Spec,
		}
	}
	t.Fatal("no Deployment rendered")
	return nil
}

// applyDocs creates the rendered documents of the given kinds.
func applyDocs(t *testing.T, docs [][]byte, kinds ...string) {
	t.Helper()
	if err := testenv.Apply(ctx, env.Client, "e2e", docs, kinds...); err != nil {
		t.Fatal(err)
	}
}

// asInjector is a client acting as the injector's ServiceAccount, with
// exactly the rights deploy/rbac.yaml gives it.
func asInjector(t *testing.T) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:opencode-system:opencode-injector"}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setImageID reports the container's image as the kubelet would.
func setImageID(t *testing.T, pod *corev1.Pod, container, imageID string) {
	t.Helper()
	p := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
		t.Fatal(err)
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: container, Image: p.Spec.Containers[0].Image, ImageID: imageID, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestSeedImageFollowsAnOverlaidImage: deploy/ under an overlay with its
// own `images:` entry runs the mirror's image with no --seed-image; the
// injector, with only deploy/rbac.yaml's rights, reads its own Pod and
// gets the mirror's repository pinned by the digest the kubelet reports.
func TestSeedImageFollowsAnOverlaidImage(t *testing.T) {
	ensureNamespace(t, "opencode-system")
	docs := deployOverlay(t)
	pod := injectorPod(t, docs)
	c := pod.Spec.Containers[0]
	if len(pod.Spec.Containers) != 1 || c.Name != "injector" || c.Image != mirrorRepo+":v9.9.9" {
		t.Fatalf("the overlay's image did not reach the injector container: %+v", pod.Spec.Containers)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--seed-image") {
			t.Errorf("deploy/ pins the seed image (%s): an overlay's images: would not move it", a)
		}
		if strings.HasPrefix(a, "--self-container=") && a != "--self-container="+c.Name {
			t.Errorf("%s does not name the injector's container %q", a, c.Name)
		}
	}
	fields := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if fields["POD_NAME"] != "metadata.name" || fields["POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("the downward API does not give the Pod's name and namespace: %v", fields)
	}

	applyDocs(t, docs, "ServiceAccount", "Role", "RoleBinding")
	if err := env.Client.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	self := app.Self{Namespace: pod.Namespace, Pod: pod.Name, Container: c.Name}
	injector := asInjector(t)
	if _, err := app.OwnImage(ctx, injector, self); err == nil || !strings.Contains(err.Error(), "has not reported") {
		t.Errorf("before the kubelet reports the image: %v", err)
	}
	setImageID(t, pod, c.Name, "ghcr.io/angryninja/opencode-injector@"+digestA)
	got, err := app.OwnImage(ctx, injector, self)
	if err != nil || got != mirrorRepo+"@"+digestA {
		t.Errorf("OwnImage = %q, %v; want %s@%s", got, err, mirrorRepo, digestA)
	}

	// Least privilege: its own namespace's pods, get only.
	if err := injector.List(ctx, &corev1.PodList{}, client.InNamespace(pod.Namespace)); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may list pods: %v", err)
	}
	other := namespace(t, nil)
	if err := injector.Get(ctx, client.ObjectKey{Namespace: other, Name: "x"}, &corev1.Pod{}); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may read pods in namespace %s: %v", other, err)
	}
	if err := injector.Get(ctx, client.ObjectKey{Namespace: "default", Name: "x"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may read Secrets: %v", err)
	}
}

// review sends one AdmissionReview for d straight to the webhook server.
func review(t *testing.T, addr string, d *appsv1.Deployment) *admissionv1.AdmissionResponse {
	t.Helper()
	body := testenv.AdmissionReview(t, d)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test server
	resp, err := hc.Post("https://"+addr+webhook.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("review: %v", err)
	}
	return out.Response
}

func readyz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/readyz?verbose")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestNotReadyUntilTheSeedImageIsKnown: serve without --seed-image is not
// ready, and answers reviews with an error rather than injecting a guessed
// image, until the kubelet has reported its own image; then it injects the
// pinned image.
func TestNotReadyUntilTheSeedImageIsKnown(t *testing.T) {
	ensureNamespace(t, "opencode-system")
	docs := deployOverlay(t)
	applyDocs(t, docs, "ServiceAccount", "Role", "RoleBinding")
	pod := injectorPod(t, docs)
	pod.Name = "opencode-injector-readyz"
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}

	certDir := t.TempDir()
	writeServingCert(t, certDir, "selfimage")
	healthAddr := testenv.FreeAddr(t)
	s := settings
	s.SeedImage = ""
	addr, _ := startManager(t, certDir, s, app.ServerOptions{
		HealthProbeBindAddress: healthAddr,
		Self:                   app.Self{Namespace: pod.Namespace, Pod: pod.Name, Container: "injector"},
		SelfPoll:               100 * time.Millisecond,
	})
	waitFor(t, func() bool { code, _ := readyz(healthAddr); return code != 0 }, "the health endpoint")
	waitFor(t, func() bool { return servedCN(addr) == "selfimage" }, "the webhook")
	time.Sleep(500 * time.Millisecond) // several polls of a Pod without an image
	if code, body := readyz(healthAddr); code == http.StatusOK || !strings.Contains(body, "[-]seed-image failed") {
		t.Errorf("ready before the seed image is known: %d %s", code, body)
	}
	d := fixture(t, "flux", "opencode")
	if r := review(t, addr, d); r.Allowed || len(r.Patch) > 0 || r.Result == nil || r.Result.Code != http.StatusServiceUnavailable ||
		!strings.Contains(r.Result.Message, "has not reported the image") {
		t.Errorf("a review before the seed image is known: allowed %v, patch %d bytes, result %+v", r.Allowed, len(r.Patch), r.Result)
	}

	setImageID(t, pod, "injector", mirrorRepo+"@"+digestA)
	waitFor(t, func() bool { code, _ := readyz(healthAddr); return code == http.StatusOK }, "readiness")
	r := review(t, addr, d)
	if !r.Allowed || !strings.Contains(string(r.Patch), `"image":"`+mirrorRepo+"@"+digestA+`"`) {
		t.Errorf("after the image is known: allowed %v, patch %s", r.Allowed, r.Patch)
	}
}

// TestNotReadyWithoutAnyWayToKnowTheSeedImage: no --seed-image and no
// downward API: never ready.
func TestNotReadyWithoutAnyWayToKnowTheSeedImage(t *testing.T) {
	certDir := t.TempDir()
	writeServingCert(t, certDir, "noself")
	healthAddr := testenv.FreeAddr(t)
	s := settings
	s.SeedImage = ""
	addr, _ := startManager(t, certDir, s, app.ServerOptions{HealthProbeBindAddress: healthAddr})
	waitFor(t, func() bool { code, _ := readyz(healthAddr); return code != 0 }, "the health endpoint")
	waitFor(t, func() bool { return servedCN(addr) == "noself" }, "the webhook")
	time.Sleep(300 * time.Millisecond)
	if code, body := readyz(healthAddr); code == http.StatusOK || !strings.Contains(body, "[-]seed-image failed") {
		t.Errorf("ready without a seed image: %d %s", code, body)
	}
	if r := review(t, addr, fixture(t, "flux", "opencode")); r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, "POD_NAME") {
		t.Errorf("a review without a seed image: allowed %v, result %+v", r.Allowed, r.Result)
	}
}
