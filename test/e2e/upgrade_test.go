package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
)

// replaceInjector swaps the running injector for one with settings s, as an
// upgrade of its Deployment does; the suite's injector comes back after t.
func replaceInjector(t *testing.T, s injection.Settings) {
	t.Helper()
	if err := env.Replace(s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Replace(settings); err != nil {
			t.Error(err)
		}
	})
}

// helmDryRun is Helm 3's upgrade of an unchanged release, dry-run: the
// strategic three-way merge patch from the chart's object to itself against
// the live object, with dryRun=All.
func helmDryRun(t *testing.T, u *unstructured.Unstructured, live *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	chart, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	current, err := json.Marshal(live)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := strategicpatch.NewPatchMetaFromStruct(appsv1.Deployment{})
	if err != nil {
		t.Fatal(err)
	}
	patch, err := strategicpatch.CreateThreeWayMergePatch(chart, chart, current, meta, true)
	if err != nil {
		t.Fatal(err)
	}
	dry := live.DeepCopy()
	if err := env.Client.Patch(ctx, dry, client.RawPatch(types.StrategicMergePatchType, patch), client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	return dry
}

func seedImageOf(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if c.Name == contract.SeedContainerName {
			return c.Image
		}
	}
	return ""
}

// assertNewRelease: the workspace runs the new injector's seed image and
// defaults (limits memory=1Gi, no CPU limit).
func assertNewRelease(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	if got := seedImageOf(d); got != image {
		t.Errorf("seed image %s, want the new injector's %s", got, image)
	}
	limits := d.Spec.Template.Spec.Containers[0].Resources.Limits
	if got := limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("limits.memory %s, want the new default 1Gi", got.String())
	}
	if cpu, set := limits[corev1.ResourceCPU]; set {
		t.Errorf("limits.cpu %s stays: the new defaults set none", cpu.String())
	}
}

// twoReleases are the settings of two injector releases: their own images
// by digest, and the new one's default limits (memory=1Gi, no CPU limit).
func twoReleases() (before, after injection.Settings) {
	before = injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("1", 64))
	after = injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("2", 64))
	after.DefaultLimits, _ = injection.ParseResources("memory=1Gi")
	return before, after
}

// TestInjectorUpgradeRestartsNoWorkspace: workspaces injected by one
// injector; the injector replaced by one with another seed image and other
// default limits. Helm's dry-run and helm-controller's drift check show no
// difference and repeated server-side applies never move generation; a
// values change then rolls once, with the new seed image, and so does
// `kubectl rollout restart`.
func TestInjectorUpgradeRestartsNoWorkspace(t *testing.T) {
	before := injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("1", 64))
	before.DefaultRequests, _ = injection.ParseResources("cpu=100m,memory=256Mi")
	before.DefaultLimits, _ = injection.ParseResources("cpu=500m,memory=512Mi")
	after := injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("2", 64))
	after.DefaultLimits, _ = injection.ParseResources("memory=1Gi")

	ns := namespace(t, nil)
	replaceInjector(t, before)
	charts := map[string]*unstructured.Unstructured{}
	injected := map[string]*appsv1.Deployment{}
	for _, name := range []string{"flux", "ha"} {
		charts[name] = chartDeployment(t, name, ns)
		injected[name] = helmApply(t, charts[name])
		if seedImageOf(injected[name]) != before.SeedImage {
			t.Fatalf("%s: not injected by the first injector", name)
		}
	}
	replaceInjector(t, after)

	for name, u := range charts {
		t.Run(name, func(t *testing.T) {
			live := get(t, injected[name])
			if !equality.Semantic.DeepEqual(live.Spec, injected[name].Spec) {
				t.Fatal("the replaced injector changed the live object")
			}
			assertNoDrift(t, u, live)
			if dry := helmDryRun(t, u, live); !equality.Semantic.DeepEqual(dry.Spec, live.Spec) || !equality.Semantic.DeepEqual(dry.Annotations, live.Annotations) {
				a, _ := json.Marshal(live.Spec)
				b, _ := json.Marshal(dry.Spec)
				t.Errorf("Helm's dry run differs from live:\nlive %s\ndry  %s", a, b)
			}
			for i := 0; i < 5; i++ {
				if d := helmApply(t, u); d.Generation != live.Generation || d.ResourceVersion != live.ResourceVersion {
					t.Fatalf("apply %d: generation %d -> %d, resourceVersion %s -> %s", i+1, live.Generation, d.Generation, live.ResourceVersion, d.ResourceVersion)
				}
			}

			// The user's values change: one rollout, with the new release.
			changed := u.DeepCopy()
			containers, _, _ := unstructured.NestedSlice(changed.Object, "spec", "template", "spec", "containers")
			containers[0].(map[string]any)["image"] = "ghcr.io/anomalyco/opencode:9.9.9"
			if err := unstructured.SetNestedSlice(changed.Object, containers, "spec", "template", "spec", "containers"); err != nil {
				t.Fatal(err)
			}
			rolled := helmApply(t, changed)
			if rolled.Generation != live.Generation+1 {
				t.Errorf("generation %d -> %d, want one rollout", live.Generation, rolled.Generation)
			}
			assertNewRelease(t, rolled, after.SeedImage)
			assertOneCopy(t, rolled)
			if again := helmApply(t, changed); again.Generation != rolled.Generation {
				t.Errorf("re-applying the change moved generation to %d", again.Generation)
			}
			assertNoDrift(t, changed, get(t, rolled))
		})
	}
}

// TestRolloutRestartTakesTheNewInjector: `kubectl rollout restart` changes
// the pod template's annotations, the user's part, so the restart is the
// rollout that brings a replaced injector's seed image; Helm's next applies
// keep it and see no drift.
func TestRolloutRestartTakesTheNewInjector(t *testing.T) {
	before, after := twoReleases()
	replaceInjector(t, before)
	u := chartDeployment(t, "flux", namespace(t, nil))
	first := helmApply(t, u)
	replaceInjector(t, after)

	restart := []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-12-05T10:00:00Z"}}}}}`)
	live := first.DeepCopy()
	if err := env.Client.Patch(ctx, live, client.RawPatch(types.StrategicMergePatchType, restart), client.FieldOwner("kubectl-rollout")); err != nil {
		t.Fatal(err)
	}
	if live.Generation != first.Generation+1 {
		t.Errorf("generation %d -> %d, want one rollout", first.Generation, live.Generation)
	}
	assertNewRelease(t, live, after.SeedImage)
	assertOneCopy(t, live)
	for i := 0; i < 3; i++ {
		if d := helmApply(t, u); d.Generation != live.Generation {
			a, _ := json.Marshal(d.Spec)
			t.Fatalf("apply %d after the restart: generation %d -> %d\n%s", i+1, live.Generation, d.Generation, a)
		}
	}
	assertNoDrift(t, u, get(t, live))
}

// The user's values set env names the injection owns (their own HOME, cache
// and password) in the middle of their list. Server-side apply merges their
// password value into the Secret key the webhook wrote there: an identical
// second apply, and applies after an injector upgrade, must not roll, and
// the record keeps the user's entry as they wrote it.
func TestSSAOfOwnedEnvDoesNotRoll(t *testing.T) {
	before := injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("1", 64))
	before.DefaultLimits, _ = injection.ParseResources("cpu=500m,memory=512Mi")
	after := injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("2", 64))
	after.DefaultLimits, _ = injection.ParseResources("memory=1Gi")
	ns := namespace(t, nil)
	replaceInjector(t, before)
	u := chartDeployment(t, "flux", ns)
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	c := cs[0].(map[string]any)
	c["env"] = []any{
		map[string]any{"name": "TZ", "value": "UTC"},
		map[string]any{"name": "HOME", "value": "/home/me"},
		map[string]any{"name": "FOO", "value": "1"},
		map[string]any{"name": contract.EnvPassword, "value": "hunter2"},
		map[string]any{"name": "XDG_CACHE_HOME", "value": "/tmp/cache"},
		map[string]any{"name": "BAR", "value": "2"},
	}
	c["workingDir"] = "/srv"
	if err := unstructured.SetNestedSlice(u.Object, cs, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	first := helmApply(t, u)
	if seedImageOf(first) != before.SeedImage {
		t.Fatalf("not injected by the first injector: %s", seedImageOf(first))
	}
	if again := helmApply(t, u); again.Generation != first.Generation {
		t.Errorf("an identical second apply rolled: generation %d -> %d; record %s", first.Generation, again.Generation, again.Annotations[contract.AnnotationInjected])
	}
	replaceInjector(t, after)
	for i := 0; i < 2; i++ {
		if d := helmApply(t, u); d.Generation != first.Generation || seedImageOf(d) != before.SeedImage {
			t.Errorf("apply %d after the upgrade rolled: generation %d -> %d, seed %s", i+1, first.Generation, d.Generation, seedImageOf(d))
		}
	}
	live := get(t, first)
	if rec := live.Annotations[contract.AnnotationInjected]; !strings.Contains(rec, `{"index":3,"name":"`+contract.EnvPassword+`","value":"hunter2"}`) {
		t.Errorf("the record does not keep the user's password entry as they wrote it: %s", rec)
	}
	assertNoDrift(t, u, live)
}
