package injection

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// EncodePatch writes the same patch as the operations' own marshaling, for
// every golden case.
func TestEncodePatchMatchesMarshal(t *testing.T) {
	for name, in := range injectiontest.GoldenCases(t) {
		m, err := MutateJSON(injectiontest.MustJSON(t, in), nil, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Patch) == 0 {
			continue
		}
		got, err := EncodePatch(m.Patch)
		if err != nil {
			t.Fatal(err)
		}
		want := injectiontest.MustJSON(t, m.Patch)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: EncodePatch wrote %s: %v", name, got, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: EncodePatch wrote\n%s\nthe operations marshal to\n%s", name, got, want)
		}
	}
}
