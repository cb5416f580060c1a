package injection

import (
	"encoding/json"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
)

// The generic list diff (the fallback for a list the typed diff does not
// take) patches a changed item in place, so the request's unknown fields
// stay, and when items move it keeps the unchanged one in place rather
// than the changed one.
func TestDiffListsPatchesMatchedItemsInPlace(t *testing.T) {
	for _, tc := range []struct{ raw, before, after, want string }{
		{`[{"name":"a","x":1,"zz":true},{"name":"b","x":1,"zz":true}]`, `[{"name":"a","x":1},{"name":"b","x":1}]`, `[{"name":"a","x":1},{"name":"b","x":2}]`,
			`[{"op":"replace","path":"/v/1/x","value":2}]`},
		{`[{"name":"a"},{"name":"b","x":1}]`, `[{"name":"a"},{"name":"b","x":1}]`, `[{"name":"b","x":2},{"name":"a"}]`,
			`[{"op":"add","path":"/v/0","value":{"name":"b","x":2}},{"op":"remove","path":"/v/2"}]`},
	} {
		var r, i, o []any
		for p, s := range map[*[]any]string{&r: tc.raw, &i: tc.before, &o: tc.after} {
			if err := json.Unmarshal([]byte(s), p); err != nil {
				t.Fatal(err)
			}
		}
		var ops []jsonpatch.Operation
		diffLists(&ops, "/v", r, i, o)
		if got, _ := json.Marshal(ops); string(got) != tc.want {
			t.Errorf("%s to %s: patch\n%s\nwant\n%s", tc.before, tc.after, got, tc.want)
		}
	}
}
