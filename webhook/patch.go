package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// createPatch builds the JSON patch that turns the raw request object into
// out, touching only what the injection changed. in is the typed decoding of
// raw. Comparing in with out (both typed) tells what the injection changed;
// raw tells what exists in the request, including fields this webhook's
// API types do not know (a newer cluster's), which stay as they are.
// Lists of named items (containers, volumes, env) are matched by name, so an
// added or removed item never shifts the others' fields.
func createPatch(raw []byte, in, out any) ([]jsonpatch.Operation, error) {
	var r, i, o any
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode request object: %w", err)
	}
	if err := roundTrip(in, &i); err != nil {
		return nil, err
	}
	if err := roundTrip(out, &o); err != nil {
		return nil, err
	}
	var ops []jsonpatch.Operation
	diff(&ops, "", r, i, o)
	return ops, nil
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
		if rok && iok && len(rv) == len(iv) && diffNamedLists(ops, path, rv, iv, ov) {
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

// diffNamedLists diffs lists whose items all carry a unique name, by name.
// It reports false when the lists are not such lists, or when their common
// items changed order, and then the caller replaces the whole list.
func diffNamedLists(ops *[]jsonpatch.Operation, path string, r, i, o []any) bool {
	inNames, ok := itemNames(i)
	if !ok {
		return false
	}
	outNames, ok := itemNames(o)
	if !ok {
		return false
	}
	var kept []string
	for _, n := range inNames {
		if slices.Contains(outNames, n) {
			kept = append(kept, n)
		}
	}
	var order []string
	for _, n := range outNames {
		if slices.Contains(inNames, n) {
			order = append(order, n)
		}
	}
	if !slices.Equal(kept, order) {
		return false
	}
	var start []jsonpatch.Operation
	r, i, cur := slices.Clone(r), slices.Clone(i), slices.Clone(inNames)
	for k := len(cur) - 1; k >= 0; k-- {
		if !slices.Contains(outNames, cur[k]) {
			start = append(start, jsonpatch.NewOperation("remove", path+"/"+strconv.Itoa(k), nil))
			r, i, cur = slices.Delete(r, k, k+1), slices.Delete(i, k, k+1), slices.Delete(cur, k, k+1)
		}
	}
	*ops = append(*ops, start...)
	for j, n := range outNames {
		p := path + "/" + strconv.Itoa(j)
		if j < len(cur) && cur[j] == n {
			diff(ops, p, r[j], i[j], o[j])
			continue
		}
		*ops = append(*ops, jsonpatch.NewOperation("add", p, o[j]))
		cur = slices.Insert(cur, j, n)
		r, i = slices.Insert(r, j, o[j]), slices.Insert(i, j, o[j])
	}
	return true
}

// itemNames returns the "name" of every item, when every item is an object
// with a unique name.
func itemNames(list []any) ([]string, bool) {
	names := make([]string, len(list))
	for k, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok || slices.Contains(names[:k], n) {
			return nil, false
		}
		names[k] = n
	}
	return names, true
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
