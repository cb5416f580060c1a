// Package injectiontest holds the golden inputs the injection and the
// admission handler are tested on, wherever the test runs from. It does not
// import the injection, so the injection's own tests can use it.
package injectiontest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	gomodulesjsonpatch "gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/angryninja/opencode-injector/manifest"
)

// root is the module's root directory.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// Testdata is the directory of the golden cases: <case>.yaml and its
// <case>.injected.yaml.
var Testdata = filepath.Join(root, "injection", "testdata")

// FluxFixture is the app-template chart rendered with the flux example's
// values.
var FluxFixture = filepath.Join(root, "test", "fixtures", "app-template", "flux.rendered.yaml")

// GoldenCases maps each case name to its input: the Deployment of every
// testdata/<case>.yaml and of the rendered app-template fixtures.
func GoldenCases(t testing.TB) map[string]*appsv1.Deployment {
	t.Helper()
	cases := map[string]*appsv1.Deployment{}
	inputs, _ := filepath.Glob(filepath.Join(Testdata, "*.yaml"))
	for _, f := range inputs {
		if !strings.HasSuffix(f, ".injected.yaml") {
			cases[strings.TrimSuffix(filepath.Base(f), ".yaml")] = ReadDeployment(t, f)
		}
	}
	fixtures, _ := filepath.Glob(filepath.Join(root, "test", "fixtures", "app-template", "*.rendered.yaml"))
	for _, f := range fixtures {
		cases["app-template-"+strings.TrimSuffix(filepath.Base(f), ".rendered.yaml")] = ReadDeployment(t, f)
	}
	if len(cases) < 14 {
		t.Fatalf("found only %d golden cases", len(cases))
	}
	return cases
}

// ReadDeployment returns the Deployment document of a file.
func ReadDeployment(t testing.TB, file string) *appsv1.Deployment {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := manifest.FirstDeployment(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return d
}

// AssertEqual fails t when got is not semantically want, showing both.
func AssertEqual(t testing.TB, what string, want, got *appsv1.Deployment) {
	t.Helper()
	if !equality.Semantic.DeepEqual(want, got) {
		a, _ := manifest.EncodeYAML(want)
		b, _ := manifest.EncodeYAML(got)
		t.Fatalf("%s differs:\nwant %s\ngot  %s", what, a, b)
	}
}

// MustJSON is v's JSON, as an admission request carries it.
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Decode reads a Deployment's JSON.
func Decode(t testing.TB, raw []byte) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &d
}

// ApplyPatch applies a JSON patch to raw, as the API server does, with
// another implementation than the one that wrote it.
func ApplyPatch(t testing.TB, raw []byte, ops []gomodulesjsonpatch.Operation) []byte {
	t.Helper()
	if len(ops) == 0 {
		return raw
	}
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(b)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", b, err)
	}
	return out
}
