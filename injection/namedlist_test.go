package injection

import (
	"encoding/json"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A changed env item is patched only at its changed leaf, and a value that
// writes its own JSON (an IntOrString) whole, never by its Go fields.
func TestPatchValueDiffsTypedValuesAtTheirJSONLeaves(t *testing.T) {
	container := &corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}}
	changed := container.DeepCopy()
	changed.Env[1].Value = "3"
	surge := intstr.FromInt32(1)
	strategy := &appsv1.DeploymentStrategy{RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}}
	changedStrategy := strategy.DeepCopy()
	*changedStrategy.RollingUpdate.MaxSurge = intstr.FromString("25%")
	for _, tc := range []struct {
		before, after any
		want          string
	}{
		{container, changed, `[{"op":"replace","path":"/v/env/1/value","value":"3"}]`},
		{strategy, changedStrategy, `[{"op":"replace","path":"/v/rollingUpdate/maxSurge","value":"25%"}]`},
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
