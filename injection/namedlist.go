package injection

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// namedItems is a typed list of named items (containers, volumes) as the
// patch builder matches them: each item's name and a pointer to it, so
// that comparing and encoding an item never copies it.
type namedItems struct {
	names []string
	items []any
}

func itemsOf[T any](list []T, name func(*T) string) namedItems {
	l := namedItems{names: make([]string, len(list)), items: make([]any, len(list))}
	for i := range list {
		l.names[i], l.items[i] = name(&list[i]), &list[i]
	}
	return l
}

func containerItems(list []corev1.Container) namedItems {
	return itemsOf(list, func(c *corev1.Container) string { return c.Name })
}

func volumeItems(list []corev1.Volume) namedItems {
	return itemsOf(list, func(v *corev1.Volume) string { return v.Name })
}

// diffNamedList appends the operations that turn the request's list raw
// (typed: in) into out, with the rule of diffLists (items matched by name
// along a heaviest common subsequence) applied to the typed items: an
// unchanged item costs one typed comparison, a new one is added as its
// typed value, and only an item the injection changed goes through the
// JSON diff, which keeps its unknown fields. It reports false, having
// appended nothing, when raw does not hold one JSON item per typed item:
// the field then takes the generic path.
func diffNamedList(ops *[]jsonpatch.Operation, path string, raw json.RawMessage, in, out namedItems) (bool, error) {
	var rawItems []json.RawMessage
	if json.Unmarshal(raw, &rawItems) != nil || len(rawItems) != len(in.items) {
		return false, nil
	}
	matched := lcs(len(in.items), len(out.items), func(x, y int) int {
		switch {
		case in.names[x] != out.names[y]:
			return 0
		case reflect.DeepEqual(in.items[x], out.items[y]):
			return 2
		}
		return 1
	})
	return true, patchMatched(ops, path, len(in.items), len(out.items), matched, func(y int) any { return out.items[y] }, func(p string, x, y int) error {
		typed := func(raw json.RawMessage) (bool, error) { return diffFields(ops, p, raw, in.items[x], out.items[y]) }
		return patchValue(ops, p, rawItems[x], in.items[x], out.items[y], typed)
	})
}

// diffFields appends the operations that turn raw, a JSON object whose
// typed value is *before, into *after, field by field: a field left as it
// was costs one typed comparison, and only the changed ones are encoded.
// It reports false, having appended nothing, for a raw value that is not
// an object or a struct with inlined fields (the whole value then takes
// the generic path).
func diffFields(ops *[]jsonpatch.Operation, path string, raw json.RawMessage, before, after any) (bool, error) {
	bv, av := reflect.ValueOf(before).Elem(), reflect.ValueOf(after).Elem()
	names, ok := jsonNames(bv.Type())
	if !ok {
		return false, nil
	}
	var rawFields map[string]json.RawMessage
	if json.Unmarshal(raw, &rawFields) != nil {
		return false, nil
	}
	for i, name := range names {
		bf, af := bv.Field(i), av.Field(i)
		if name == "" || reflect.DeepEqual(bf.Addr().Interface(), af.Addr().Interface()) {
			continue
		}
		if err := patchValue(ops, path+"/"+escapePointer(name), rawFields[name], bf.Interface(), af.Interface(), nil); err != nil {
			return true, err
		}
	}
	return true, nil
}

// fieldNames caches jsonNames per struct type.
var fieldNames sync.Map

// jsonNames are the JSON names of a struct's fields ("" for a field left
// out of JSON); false when a field is inlined.
func jsonNames(t reflect.Type) ([]string, bool) {
	if names, ok := fieldNames.Load(t); ok {
		return names.([]string), names.([]string) != nil
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
			name = ""
		case name == "":
			fieldNames.Store(t, []string(nil))
			return nil, false
		}
		names = append(names, name)
	}
	fieldNames.Store(t, names)
	return names, true
}
