package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/manifest"
)

// Helm's field manager: what helm-controller sends is attributed to it.
const helmManager = "helm-controller"

// chartDeployment is the Deployment document of a rendered fixture exactly
// as the chart renders it (no typed zero values), placed in ns.
func chartDeployment(t *testing.T, name, ns string) *unstructured.Unstructured {
	t.Helper()
	docs, err := manifest.SplitYAML(rendered(t, name))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if u.GetKind() == "Deployment" {
			u.SetNamespace(ns)
			return u
		}
	}
	t.Fatalf("no Deployment in %s", name)
	return nil
}

// helmApply server-side applies u as helm-controller and returns what the
// API server answered.
func helmApply(t *testing.T, u *unstructured.Unstructured, opts ...client.ApplyOption) *appsv1.Deployment {
	t.Helper()
	out := u.DeepCopy()
	opts = append([]client.ApplyOption{client.FieldOwner(helmManager), client.ForceOwnership}, opts...)
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(out), opts...); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out.Object, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// assertOneCopy checks that every injected item is there exactly once.
func assertOneCopy(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	count := map[string]int{}
	for _, c := range ps.InitContainers {
		count["init "+c.Name]++
	}
	for _, v := range ps.Volumes {
		count["volume "+v.Name]++
	}
	for _, c := range ps.Containers {
		for _, m := range c.VolumeMounts {
			count[c.Name+" mount "+m.MountPath]++
		}
		for _, e := range c.Env {
			count[c.Name+" env "+e.Name]++
		}
	}
	for _, key := range []string{"init " + contract.SeedContainerName, "volume " + contract.DataVolumeName, "volume " + contract.AuthVolumeName, "app mount /data", "app env HOME", "app env GIT_CONFIG_COUNT"} {
		if count[key] != 1 {
			t.Errorf("%s: %d copies, want 1", key, count[key])
		}
	}
	for key, n := range count {
		if n > 1 {
			t.Errorf("%s: %d copies", key, n)
		}
	}
}

// TestServerSideApplyDoesNotDrift: helm-controller applying the same
// release 50 times never moves generation and never flips a field.
func TestServerSideApplyDoesNotDrift(t *testing.T) {
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			u := chartDeployment(t, name, namespace(t, nil))
			first := helmApply(t, u)
			assertInjected(t, first)
			for i := 1; i < 50; i++ {
				d := helmApply(t, u)
				if d.Generation != first.Generation || d.ResourceVersion != first.ResourceVersion {
					t.Fatalf("apply %d: generation %d -> %d, resourceVersion %s -> %s", i+1, first.Generation, d.Generation, first.ResourceVersion, d.ResourceVersion)
				}
				if !equality.Semantic.DeepEqual(d.Spec, first.Spec) || !equality.Semantic.DeepEqual(d.Annotations, first.Annotations) || !equality.Semantic.DeepEqual(d.Labels, first.Labels) {
					t.Fatalf("apply %d changed the object", i+1)
				}
			}
		})
	}
}

// TestDriftDetectionSeesNoDrift: the server-side dry-run apply that
// helm-controller's drift detection sends returns exactly the live spec.
func TestDriftDetectionSeesNoDrift(t *testing.T) {
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			u := chartDeployment(t, name, namespace(t, nil))
			helmApply(t, u)
			live := &appsv1.Deployment{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), live); err != nil {
				t.Fatal(err)
			}
			assertNoDrift(t, u, live)

			// `kubectl rollout restart`, the README's way to inject an existing
			// Deployment, adds a template annotation Helm does not own: still no drift.
			restart := []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-26T00:00:00Z"}}}}}`)
			if err := env.Client.Patch(ctx, live, client.RawPatch(types.StrategicMergePatchType, restart), client.FieldOwner("kubectl-rollout")); err != nil {
				t.Fatal(err)
			}
			if live.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
				t.Fatal("the restart annotation is not there")
			}
			assertInjected(t, live)
			assertNoDrift(t, u, live)
		})
	}
}

// assertNoDrift: helm-controller's dry-run apply of u returns live as it is.
func assertNoDrift(t *testing.T, u *unstructured.Unstructured, live *appsv1.Deployment) {
	t.Helper()
	dry := helmApply(t, u, client.DryRunAll)
	if !equality.Semantic.DeepEqual(dry.Spec, live.Spec) || !equality.Semantic.DeepEqual(dry.Annotations, live.Annotations) {
		a, _ := json.Marshal(live.Spec)
		b, _ := json.Marshal(dry.Spec)
		t.Errorf("dry run differs from live:\nlive %s\ndry  %s", a, b)
	}
}

// TestUpgradeKeepsOneCopy: an upgrade that changes user values rolls the
// workspace once and keeps exactly one copy of everything injected.
func TestUpgradeKeepsOneCopy(t *testing.T) {
	u := chartDeployment(t, "flux", namespace(t, nil))
	first := helmApply(t, u)
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	app := containers[0].(map[string]any)
	app["image"] = "ghcr.io/anomalyco/opencode:1.2.3"
	app["env"] = []any{map[string]any{"name": "TZ", "value": "Europe/Berlin"}}
	if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	upgraded := helmApply(t, u)
	if upgraded.Generation != first.Generation+1 {
		t.Errorf("generation %d -> %d, want one bump", first.Generation, upgraded.Generation)
	}
	c := upgraded.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/anomalyco/opencode:1.2.3" || c.Env[0].Value != "Europe/Berlin" {
		t.Errorf("the upgrade's values are not there: %s %v", c.Image, c.Env[0])
	}
	assertInjected(t, upgraded)
	assertOneCopy(t, upgraded)
	if again := helmApply(t, u); again.Generation != upgraded.Generation {
		t.Errorf("re-applying the upgrade moved generation to %d", again.Generation)
	}
}

// TestThreeWayMergeKeepsInjection: a client-side apply, the strategic
// three-way merge patch Helm 3 and `kubectl apply` send, keeps the
// injection intact.
func TestThreeWayMergeKeepsInjection(t *testing.T) {
	ns := namespace(t, nil)
	u := chartDeployment(t, "flux", ns)
	original, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, u.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	live := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), live); err != nil {
		t.Fatal(err)
	}
	current, err := json.Marshal(live)
	if err != nil {
		t.Fatal(err)
	}
	modified := strings.Replace(string(original), "America/New_York", "Europe/Berlin", 1)
	meta, err := strategicpatch.NewPatchMetaFromStruct(appsv1.Deployment{})
	if err != nil {
		t.Fatal(err)
	}
	patch, err := strategicpatch.CreateThreeWayMergePatch(original, []byte(modified), current, meta, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Patch(ctx, live, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	got := get(t, live)
	assertInjected(t, got)
	assertOneCopy(t, got)
	if tz := got.Spec.Template.Spec.Containers[0].Env[0]; tz.Value != "Europe/Berlin" {
		t.Errorf("the patch's value is not there: %v", tz)
	}
}

// TestLabelRemovedThenAddedBack: removing the label un-injects cleanly;
// adding it back re-injects identically.
func TestLabelRemovedThenAddedBack(t *testing.T) {
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			u := chartDeployment(t, name, namespace(t, nil))
			injected := helmApply(t, u)

			plain := u.DeepCopy()
			labels := plain.GetLabels()
			delete(labels, contract.LabelInject)
			plain.SetLabels(labels)
			removed := helmApply(t, plain)
			if _, ok := removed.Annotations[contract.AnnotationInjected]; ok {
				t.Error("the status annotation stayed")
			}
			spec, _ := json.Marshal(removed.Spec)
			// The fixtures set OPENCODE_SERVER_PASSWORD themselves: it stays
			// (TestPasswordSurvivesWithoutTheWebhook).
			for _, ours := range []string{contract.SeedContainerName, contract.DataVolumeName, contract.AuthVolumeName, contract.WorkspaceRoot, "GIT_CONFIG_COUNT", "XDG_DATA_HOME", contract.EnvToken} {
				if strings.Contains(string(spec), ours) {
					t.Errorf("%s is left after un-injection", ours)
				}
			}
			if name == "ha" {
				want := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: injected.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]}}
				if got := removed.Spec.Template.Spec.Containers[0].Resources; !equality.Semantic.DeepEqual(got, want) {
					t.Errorf("resources after un-injection: %v, want the user's %v", got, want)
				}
			}

			again := helmApply(t, u)
			if !equality.Semantic.DeepEqual(again.Spec, injected.Spec) || !equality.Semantic.DeepEqual(again.Annotations, injected.Annotations) {
				t.Error("re-injection differs from the first injection")
			}
		})
	}
}
