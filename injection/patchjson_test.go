package injection

import (
	"encoding/json"
	"reflect"
	"testing"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// EncodePatch writes the same patch as the operations' own marshaling, for
// every golden case, and for paths that need escaping (an annotation key
// may hold anything).
func TestEncodePatchMatchesMarshal(t *testing.T) {
	patches := map[string][]jsonpatch.Operation{
		"escapes": {},
	}
	for _, key := range []string{`a"b`, `a\b`, "a<b", "a>b", "a&b", "a\u00e9b", "a\nb", "a\u2028b", "a~1b"} {
		patches["escapes"] = append(patches["escapes"], jsonpatch.NewOperation("add", "/metadata/annotations/"+key, "x"))
	}
	for name, in := range injectiontest.GoldenCases(t) {
		m, err := MutateJSON(injectiontest.MustJSON(t, in), nil, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		patches[name] = m.Patch
	}
	for name, patch := range patches {
		if len(patch) == 0 {
			continue
		}
		got, err := EncodePatch(patch)
		if err != nil {
			t.Fatal(err)
		}
		want := injectiontest.MustJSON(t, patch)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: EncodePatch wrote %s: %v", name, got, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(w, g) || !json.Valid(got) {
			t.Errorf("%s: EncodePatch wrote\n%s\nthe operations marshal to\n%s", name, got, want)
		}
	}
}
