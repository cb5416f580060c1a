package injection

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
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

// lcsUnique, the matching of lists too long for the table, finds only
// valid runs (increasing on both sides, same items), as heavy as the
// table's whenever every name is unique on each side: on random lists
// where items are inserted, removed, moved, changed and duplicated.
func TestLCSUniqueIsAsHeavyAsTheTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 5))
	for range 2000 {
		n := rng.IntN(40)
		old := make([]string, n)
		for i := range old {
			old[i] = strconv.Itoa(i)
		}
		var new []string
		for _, name := range old {
			switch rng.IntN(6) {
			case 0: // removed
			case 1: // another item inserted before it
				new = append(new, "new"+name, name)
			default:
				new = append(new, name)
			}
		}
		if len(new) > 1 && rng.IntN(2) == 0 { // one item moved
			i, j := rng.IntN(len(new)), rng.IntN(len(new))
			moved := new[i]
			new = slices.Insert(slices.Delete(new, i, i+1), min(j, len(new)-1), moved)
		}
		unique := rng.IntN(3) > 0
		if !unique && n > 0 { // a name twice on one side, or on both
			old = append(old, old[rng.IntN(n)])
			if rng.IntN(2) == 0 {
				new = append(new, old[rng.IntN(len(old))])
			}
		}
		changed := map[string]bool{}
		for _, name := range old {
			changed[name] = rng.IntN(3) == 0
		}
		weight := func(x, y int) int {
			switch {
			case old[x] != new[y]:
				return 0
			case changed[old[x]]:
				return 1
			}
			return 2
		}
		key := func(l []string) func(int) string { return func(i int) string { return l[i] } }
		total := func(pairs []match) int { return matchedWeight(t, old, new, pairs, weight) }
		table := total(lcsTable(nil, 0, len(old), len(new), weight))
		if got := total(lcsUnique(nil, 0, len(old), len(new), weight, key(old), key(new))); unique && got != table {
			t.Fatalf("%v to %v (changed %v): lcsUnique's run weighs %d, the table's %d", old, new, changed, got, table)
		}
	}
}
