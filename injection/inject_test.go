package injection

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite the golden .injected.yaml files")

// testSettings are the flag defaults with a fixed seed image.
func testSettings() Settings { return DefaultSettings(ImageRepository + ":v0.0.0-test") }

// render is the golden form: warnings or the denial as comments, then YAML.
func render(t *testing.T, out *appsv1.Deployment, warnings []string, err error) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, w := range warnings {
		b.WriteString("# warning: " + w + "\n")
	}
	if err != nil {
		b.WriteString("# denied: " + err.Error() + "\n")
		return b.Bytes()
	}
	y, encErr := manifest.EncodeYAML(out)
	if encErr != nil {
		t.Fatal(encErr)
	}
	b.Write(y)
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			out, warnings, err := Mutate(in, nil, testSettings())
			got := render(t, out, warnings, err)
			golden := filepath.Join("testdata", name+".injected.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, readErr := os.ReadFile(golden)
			if readErr != nil {
				t.Fatalf("%v (run go test ./injection -update to create it)", readErr)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-golden +got; go test ./injection -update rewrites it):\n%s", golden, diff)
			}
		})
	}
}

// TestInjectTwiceChangesNothing: the injected output injected again is the
// same object, byte for byte, which is what keeps Flux from rolling pods.
func TestInjectTwiceChangesNothing(t *testing.T) {
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			once, _, err := Mutate(in, nil, testSettings())
			if err != nil {
				t.Skipf("denied case: %v", err)
			}
			twice, _, err := Mutate(once, nil, testSettings())
			if err != nil {
				t.Fatalf("second injection denied: %v", err)
			}
			a, _ := manifest.EncodeYAML(once)
			b, _ := manifest.EncodeYAML(twice)
			if diff := cmp.Diff(string(a), string(b)); diff != "" {
				t.Errorf("second injection changed the object:\n%s", diff)
			}
		})
	}
}

// TestRemovingLabelRestoresOriginal: un-injection gives back exactly what
// the user wrote.
func TestRemovingLabelRestoresOriginal(t *testing.T) {
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			if IsInjected(in) {
				t.Skip("the input is injected already: its original is not known")
			}
			out, _, err := Mutate(in, nil, testSettings())
			if err != nil || !IsInjected(out) {
				t.Skip("not injected")
			}
			delete(out.Labels, contract.LabelInject)
			restored, _, err := Mutate(out, nil, testSettings())
			if err != nil {
				t.Fatalf("un-injection denied: %v", err)
			}
			want := in.DeepCopy()
			delete(want.Labels, contract.LabelInject)
			if !equality.Semantic.DeepEqual(want, restored) {
				a, _ := manifest.EncodeYAML(want)
				b, _ := manifest.EncodeYAML(restored)
				t.Errorf("not restored (-original +restored):\n%s", cmp.Diff(string(a), string(b)))
			}
		})
	}
}

// TestInjectDoesNotModifyInput: Mutate writes only into its copies
// (mutableCopy), never into the request or the stored object it shares
// the rest with, on every path: a CREATE, a no-op UPDATE kept by the pin,
// a pin whose seed image is replaced, an edited UPDATE, an un-injection
// and a Deployment being deleted. Compared with reflect.DeepEqual, so a
// nil turned into an empty list counts too.
func TestInjectDoesNotModifyInput(t *testing.T) {
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			mutate := func(what string, d, stored *appsv1.Deployment) *appsv1.Deployment {
				t.Helper()
				d0, stored0 := d.DeepCopy(), stored.DeepCopy()
				out, _, _ := Mutate(d, stored, testSettings())
				if !reflect.DeepEqual(d0, d) {
					t.Fatalf("%s: Mutate modified its input:\n%s", what, cmp.Diff(d0, d))
				}
				if !reflect.DeepEqual(stored0, stored) {
					t.Fatalf("%s: Mutate modified the stored object:\n%s", what, cmp.Diff(stored0, stored))
				}
				return out
			}
			out := mutate("create", in, nil)
			if out == nil || !IsInjected(out) {
				return
			}
			mutate("no-op update", out, out)
			mutate("update of a copy", out.DeepCopy(), out)
			foreign := out.DeepCopy()
			for i := range foreign.Spec.Template.Spec.InitContainers {
				foreign.Spec.Template.Spec.InitContainers[i].Image = "evil.example/x:1"
			}
			mutate("pin with a foreign seed image", foreign.DeepCopy(), foreign)
			edited := out.DeepCopy()
			edited.Spec.Template.Spec.Containers[0].Env = append(edited.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "USER_EDIT", Value: "x"})
			mutate("edited update", edited, out)
			unlabeled := out.DeepCopy()
			delete(unlabeled.Labels, contract.LabelInject)
			mutate("un-injection", unlabeled, out)
			deleting := out.DeepCopy()
			deleting.DeletionTimestamp = &metav1.Time{}
			mutate("deletion", deleting, out)
		})
	}
}
