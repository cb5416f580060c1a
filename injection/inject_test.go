package injection

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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

func TestInjectDoesNotModifyInput(t *testing.T) {
	in := injectiontest.ReadDeployment(t, "testdata/env-collision.yaml")
	before := in.DeepCopy()
	if _, _, err := Mutate(in, nil, testSettings()); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(before, in) {
		t.Error("Mutate modified its input")
	}
}
