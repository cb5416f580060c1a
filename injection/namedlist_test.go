package injection

import (
	"encoding/json"
	"slices"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A changed env item is patched only at its changed leaf, and a value that
// writes its own JSON (an IntOrString) whole, never by its Go fields; maps
// and volumes are diffed on their typed values too.
func TestPatchValueDiffsTypedValuesAtTheirJSONLeaves(t *testing.T) {
	container := &corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}}
	changed := container.DeepCopy()
	changed.Env[1].Value = "3"
	surge := intstr.FromInt32(1)
	strategy := &appsv1.DeploymentStrategy{RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}}
	changedStrategy := strategy.DeepCopy()
	*changedStrategy.RollingUpdate.MaxSurge = intstr.FromString("25%")
	annotations := map[string]string{"a/b": "1", "keep": "2", "gone": "3"}
	limits := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	for _, tc := range []struct {
		before, after any
		want          string
	}{
		{container, changed, `[{"op":"replace","path":"/v/env/1/value","value":"3"}]`},
		{strategy, changedStrategy, `[{"op":"replace","path":"/v/rollingUpdate/maxSurge","value":"25%"}]`},
		// Maps key by key, a Quantity compared by value however it is spelled.
		{annotations, map[string]string{"a/b": "4", "keep": "2", "new": "5"},
			`[{"op":"replace","path":"/v/a~1b","value":"4"},{"op":"add","path":"/v/new","value":"5"},{"op":"remove","path":"/v/gone"}]`},
		{limits, corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(1000, resource.DecimalSI), corev1.ResourceMemory: resource.MustParse("2Gi")},
			`[{"op":"replace","path":"/v/memory","value":"2Gi"}]`},
		// Volumes (a source inlined beside the name) matched by name: a new one is added alone.
		{volumes, append(slices.Clone(volumes), corev1.Volume{Name: "data"}),
			`[{"op":"add","path":"/v/1","value":{"name":"data"}}]`},
	} {
		raw, err := json.Marshal(tc.before)
		if err != nil {
			t.Fatal(err)
		}
		var ops []jsonpatch.Operation
		if err := patchValue(&ops, "/v", raw, tc.before, tc.after); err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(ops); string(got) != tc.want {
			t.Errorf("patch\n%s\nwant\n%s", got, tc.want)
		}
	}
}
