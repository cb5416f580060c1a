package injection

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// injectedFields are all the fields Mutate may change, with their JSON
// pointers; the rest of the object is never looked at, let alone patched.
// The handler tests and FuzzInject check that the patch applied to the
// request gives Mutate's output, for every golden case and random edits: a
// field Mutate starts to change without being listed here fails them.
var injectedFields = []struct {
	path string
	keys []string // path's keys, to find the request's own bytes
	get  func(*appsv1.Deployment) any
}{
	{"/metadata/annotations", []string{"metadata", "annotations"}, func(d *appsv1.Deployment) any { return d.Annotations }},
	{"/spec/strategy", []string{"spec", "strategy"}, func(d *appsv1.Deployment) any { return d.Spec.Strategy }},
	{"/spec/template/spec/initContainers", []string{"spec", "template", "spec", "initContainers"}, func(d *appsv1.Deployment) any { return d.Spec.Template.Spec.InitContainers }},
	{"/spec/template/spec/containers", []string{"spec", "template", "spec", "containers"}, func(d *appsv1.Deployment) any { return d.Spec.Template.Spec.Containers }},
	{"/spec/template/spec/volumes", []string{"spec", "template", "spec", "volumes"}, func(d *appsv1.Deployment) any { return d.Spec.Template.Spec.Volumes }},
	{"/spec/template/spec/securityContext", []string{"spec", "template", "spec", "securityContext"}, func(d *appsv1.Deployment) any { return d.Spec.Template.Spec.SecurityContext }},
}

// injectedRaw finds the request's bytes of every injected field in one
// pass over each object on the way.
var injectedRaw = func() *rawTree {
	paths := make([][]string, len(injectedFields))
	for i, f := range injectedFields {
		paths[i] = f.keys
	}
	return newRawTree(paths)
}()

// createPatch builds the JSON patch that turns the raw request object into
// out, touching only what the injection changed; nil when nothing changed.
// in is the typed decoding of raw. Comparing in with out (both typed) tells
// what the injection changed; raw tells what exists in the request,
// including fields this webhook's API types do not know (a newer
// cluster's), which stay as they are. List items are matched (named ones by
// name), so an added or removed item never shifts the others' fields.
func createPatch(raw []byte, in, out *appsv1.Deployment) ([]jsonpatch.Operation, error) {
	var ops []jsonpatch.Operation
	var found []json.RawMessage // the request's bytes, read at the first change
	for i, f := range injectedFields {
		before, after := f.get(in), f.get(out)
		if reflect.DeepEqual(before, after) {
			continue
		}
		if found == nil {
			found = make([]json.RawMessage, len(injectedFields))
			injectedRaw.find(raw, found)
			ops = make([]jsonpatch.Operation, 0, 32) // a CREATE writes about 20
		}
		if err := patchValue(&ops, f.path, found[i], before, after); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// patchValue appends the operations that turn rawField, the request's
// JSON at path (typed: before), into after. Its callers have found before
// and after different by reflect.DeepEqual, a cheap first answer; values
// it tells apart may still be equal to the API (a nil and an empty list, a
// Quantity spelled two ways), which the cases below check. A value present
// on both sides is diffed on the typed values where it can be (typedDiff),
// else by the generic JSON diff.
func patchValue(ops *[]jsonpatch.Operation, path string, rawField json.RawMessage, before, after any) error {
	present := len(rawField) > 0 && string(rawField) != "null"
	switch {
	case !present && omitted(after):
	case (!present || omitted(after)) && equality.Semantic.DeepEqual(before, after):
	case !present: // the typed value goes into the patch as it is
		*ops = append(*ops, jsonpatch.NewOperation("add", path, after))
	case omitted(after):
		*ops = append(*ops, jsonpatch.NewOperation("remove", path, nil))
	default:
		if done, err := typedDiff(ops, path, rawField, before, after); err != nil || done {
			return err
		}
		var r, i, o any
		if err := json.Unmarshal(rawField, &r); err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if err := roundTrip(before, &i); err != nil {
			return err
		}
		if err := roundTrip(after, &o); err != nil {
			return err
		}
		diff(ops, path, r, i, o)
	}
	return nil
}

// typedDiff diffs two typed values without JSON where their type allows:
// lists of named items item by item, maps key by key, structs behind
// pointers field by field. It reports whether it did.
func typedDiff(ops *[]jsonpatch.Operation, path string, rawField json.RawMessage, before, after any) (bool, error) {
	if in, ok := namedList(before); ok {
		out, _ := namedList(after)
		return diffNamedList(ops, path, rawField, in, out)
	}
	if diffMap(ops, path, before, after) {
		return true, nil
	}
	bv, av := reflect.ValueOf(before), reflect.ValueOf(after)
	if bv.Kind() == reflect.Pointer && !bv.IsNil() && !av.IsNil() && bv.Elem().Kind() == reflect.Struct {
		return diffFields(ops, path, rawField, before, after)
	}
	return false, nil
}

// omitted tells whether the API types leave a field out of their JSON
// (omitempty): a nil pointer, an empty list or map.
func omitted(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		return rv.IsNil()
	case reflect.Slice, reflect.Map:
		return rv.Len() == 0
	}
	return false
}

func roundTrip(v any, into *any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode object: %w", err)
	}
	return json.Unmarshal(b, into)
}

// diff appends the operations that turn r into o at path; i is r as the
// typed API knows it. Only where i and o differ is anything touched.
func diff(ops *[]jsonpatch.Operation, path string, r, i, o any) {
	if reflect.DeepEqual(i, o) {
		return
	}
	switch ov := o.(type) {
	case map[string]any:
		rv, rok := r.(map[string]any)
		iv, iok := i.(map[string]any)
		if rok && iok {
			diffMaps(ops, path, rv, iv, ov)
			return
		}
	case []any:
		rv, rok := r.([]any)
		iv, iok := i.([]any)
		if rok && iok && len(rv) == len(iv) {
			diffLists(ops, path, rv, iv, ov)
			return
		}
	}
	*ops = append(*ops, jsonpatch.NewOperation("replace", path, o))
}

func diffMaps(ops *[]jsonpatch.Operation, path string, r, i, o map[string]any) {
	for _, k := range sortedKeys(o) {
		p := path + "/" + escapePointer(k)
		rk, inR := r[k]
		ik, inI := i[k]
		switch {
		case inI && reflect.DeepEqual(ik, o[k]):
			// unchanged by the injection, however the request spells it
		case !inR:
			*ops = append(*ops, jsonpatch.NewOperation("add", p, o[k]))
		case !inI:
			*ops = append(*ops, jsonpatch.NewOperation("replace", p, o[k]))
		default:
			diff(ops, p, rk, ik, o[k])
		}
	}
	for _, k := range sortedKeys(r) {
		if _, inO := o[k]; inO {
			continue
		}
		if _, inI := i[k]; inI { // removed by the injection; unknown keys stay
			*ops = append(*ops, jsonpatch.NewOperation("remove", path+"/"+escapePointer(k), nil))
		}
	}
}

// diffLists diffs two lists item by item: items are matched in order by a
// longest common subsequence, objects with a "name" by name (duplicates
// allowed), anything else by equality. Matched items are diffed in place,
// so their unknown fields stay; the others are removed or added.
func diffLists(ops *[]jsonpatch.Operation, path string, r, i, o []any) {
	matched := lcs(len(i), len(o), func(x, y int) int {
		switch {
		case !sameItem(i[x], o[y]): // equality is compared only for items that may be the same
			return 0
		case reflect.DeepEqual(i[x], o[y]):
			return 2
		}
		return 1
	}, itemKey(i), itemKey(o))
	patchMatched(ops, path, len(i), len(o), matched, func(y int) any { return o[y] }, func(at func() string, m match) error {
		if !m.unchanged {
			diff(ops, at(), r[m.x], i[m.x], o[m.y])
		}
		return nil
	})
}

// patchMatched appends the operations that turn a list of n items into one
// of m, given the matched items: unmatched items are removed or added (the
// value of the y-th new item is add(y)), matched ones are left to same,
// which asks at for their position's path only when it patches.
func patchMatched(ops *[]jsonpatch.Operation, path string, n, m int, matched []match, add func(y int) any, same func(at func() string, m match) error) error {
	pos, x, y := 0, 0, 0
	at := func() string { return path + "/" + strconv.Itoa(pos) }
	for _, next := range append(matched, match{x: n, y: m}) {
		for ; x < next.x; x++ {
			*ops = append(*ops, jsonpatch.NewOperation("remove", at(), nil))
		}
		for ; y < next.y; y++ {
			*ops = append(*ops, jsonpatch.NewOperation("add", at(), add(y)))
			pos++
		}
		if x < n {
			if err := same(at, next); err != nil {
				return err
			}
			pos, x, y = pos+1, x+1, y+1
		}
	}
	return nil
}

// match is a pair of matched list items: the x-th of the old list is the
// y-th of the new one, unchanged or not.
type match struct {
	x, y      int
	unchanged bool
}

// lcs returns the matched items of a heaviest common subsequence of two
// lists of n and m items; weight(x, y) is 0 for items that are not the
// same, 1 for the same item changed, 2 for an unchanged one: so that when
// items move, the ones the injection did not touch keep their place (and
// their unknown fields). inKey and outKey are the items' names, which only
// lists too long for the table are matched by.
//
// Unchanged items at both ends are matched as they are, without a table:
// some heaviest subsequence holds them (2 is the highest weight), and the
// table's backtrack takes the leading ones itself. So a long list costs a
// table only around what the injection changed, and the table is bounded
// (maxTableCells): a request of a few hundred kilobytes with tens of
// thousands of env entries would otherwise cost the webhook seconds and
// gigabytes.
func lcs(n, m int, weight func(x, y int) int, inKey, outKey func(int) string) []match {
	lo := 0
	for lo < n && lo < m && weight(lo, lo) == 2 {
		lo++
	}
	hi := 0
	for lo+hi < n && lo+hi < m && weight(n-1-hi, m-1-hi) == 2 {
		hi++
	}
	pairs := make([]match, 0, min(n, m))
	for i := range lo {
		pairs = append(pairs, match{x: i, y: i, unchanged: true})
	}
	if mid := (n - lo - hi) * (m - lo - hi); mid <= maxTableCells {
		pairs = lcsTable(pairs, lo, n-lo-hi, m-lo-hi, weight)
	} else {
		pairs = lcsUnique(pairs, lo, n-lo-hi, m-lo-hi, weight, inKey, outKey)
	}
	for i := range hi {
		pairs = append(pairs, match{x: n - hi + i, y: m - hi + i, unchanged: true})
	}
	return pairs
}

// maxTableCells bounds lcsTable's work and memory (about 1 MiB).
const maxTableCells = 1 << 16

// lcsTable appends to pairs the matches of a heaviest common subsequence
// of the n and m items that start at off in both lists, by dynamic
// programming over every pair.
func lcsTable(pairs []match, off, n, m int, weight func(x, y int) int) []match {
	if n == 0 || m == 0 {
		return pairs
	}
	// Three allocations, whatever the lists' lengths.
	cells := make([]int, (n+1)*(m+1)+n*m)
	table, weights := make([][]int, n+1), make([][]int, n)
	for x := range table {
		table[x], cells = cells[:m+1:m+1], cells[m+1:]
	}
	for x := range weights {
		weights[x], cells = cells[:m:m], cells[m:]
	}
	for x := n - 1; x >= 0; x-- {
		for y := m - 1; y >= 0; y-- {
			weights[x][y] = weight(off+x, off+y)
			table[x][y] = max(table[x+1][y], table[x][y+1])
			if w := weights[x][y]; w > 0 {
				table[x][y] = max(table[x][y], w+table[x+1][y+1])
			}
		}
	}
	for x, y := 0, 0; x < n && y < m; {
		switch w := weights[x][y]; {
		case w > 0 && table[x][y] == w+table[x+1][y+1]:
			pairs = append(pairs, match{x: off + x, y: off + y, unchanged: w == 2})
			x, y = x+1, y+1
		case table[x+1][y] >= table[x][y+1]:
			x++
		default:
			y++
		}
	}
	return pairs
}

// lcsUnique appends to pairs a heaviest common subsequence of the n and m
// items that start at off in both lists, lists too long for lcsTable, in
// O(n log m): each old item is paired with the new item of the same name
// and the same rank among the items of that name (the second SAME with the
// second SAME), and of those pairs a heaviest run increasing on both sides
// is kept (a Fenwick tree over the new positions holds the best run ending
// before each). Other items are not matched: they are removed and added, a
// correct patch, only a longer one. Equal names weigh at least 1.
func lcsUnique(pairs []match, off, n, m int, weight func(x, y int) int, inKey, outKey func(int) string) []match {
	// For each name, the new item the next old item of that name pairs
	// with (-1: none left); after each new item, the next of its name.
	nextOf, after := make(map[string]int, m), make([]int, m)
	for y := off + m - 1; y >= off; y-- {
		after[y-off] = -1
		if later, ok := nextOf[outKey(y)]; ok {
			after[y-off] = later
		}
		nextOf[outKey(y)] = y
	}
	type run struct{ weight, last int } // a run's weight and its last candidate (-1: none)
	var cands []match
	var prev []int
	tree := make([]run, m+1) // 1-based over the new positions
	for i := range tree {
		tree[i].last = -1
	}
	for x := off; x < off+n; x++ {
		name := inKey(x)
		y, ok := nextOf[name]
		if name == "" || !ok || y < 0 {
			continue
		}
		nextOf[name] = after[y-off]
		w := weight(x, y)
		best := run{last: -1}
		for q := y - off; q > 0; q -= q & -q { // runs ending before y
			if tree[q].weight > best.weight {
				best = tree[q]
			}
		}
		cands, prev = append(cands, match{x: x, y: y, unchanged: w == 2}), append(prev, best.last)
		mine := run{weight: best.weight + w, last: len(cands) - 1}
		for q := y - off + 1; q <= m; q += q & -q {
			if mine.weight > tree[q].weight {
				tree[q] = mine
			}
		}
	}
	top := run{last: -1}
	for q := m; q > 0; q -= q & -q {
		if tree[q].weight > top.weight {
			top = tree[q]
		}
	}
	start := len(pairs)
	for i := top.last; i >= 0; i = prev[i] {
		pairs = append(pairs, cands[i])
	}
	slices.Reverse(pairs[start:])
	return pairs
}

// sameItem tells whether two list items may be the same item: by name when
// both are named objects, else by equality.
func sameItem(a, b any) bool {
	an, aok := itemName(a)
	bn, bok := itemName(b)
	if aok && bok {
		return an == bn
	}
	return reflect.DeepEqual(a, b)
}

// itemKey is the names of a generic list's items ("" for an item without one).
func itemKey(items []any) func(int) string {
	return func(i int) string {
		name, _ := itemName(items[i])
		return name
	}
}

func itemName(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	n, ok := m["name"].(string)
	return n, ok
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
