package injection

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
)

// namedItems is a typed list of named items (containers, volumes, env,
// mounts) as the patch builder matches them: each item's name and a
// pointer to it, so that comparing and encoding an item never copies it.
type namedItems struct {
	names []string
	items []any
}

// namedList reads v as a list of named items: a slice of structs whose
// "name" field is always written (omitempty names, like a port's, are
// matched by the generic rule instead); false for anything else.
func namedList(v any) (namedItems, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() != reflect.Struct {
		return namedItems{}, false
	}
	nameField, ok := nameIndex(rv.Type().Elem())
	if !ok {
		return namedItems{}, false
	}
	l := namedItems{names: make([]string, rv.Len()), items: make([]any, rv.Len())}
	for i := range rv.Len() {
		item := rv.Index(i)
		l.names[i], l.items[i] = item.Field(nameField).String(), item.Addr().Interface()
	}
	return l, true
}

// diffNamedList appends the operations that turn the request's list raw
// (typed: in) into out, with the rule of diffLists (items matched by name
// along a heaviest common subsequence) applied to the typed items: an
// unchanged item costs one typed comparison, a new one is added as its
// typed value, and a changed one is diffed by patchValue. It reports
// false, having appended nothing, when raw does not hold one JSON item per
// typed item: the field then takes the generic path.
func diffNamedList(ops *[]jsonpatch.Operation, path string, raw json.RawMessage, in, out namedItems) (bool, error) {
	items, ok := rawItems(raw, len(in.items))
	if !ok || len(items) != len(in.items) {
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
	}, func(x int) string { return in.names[x] }, func(y int) string { return out.names[y] })
	return true, patchMatched(ops, path, len(in.items), len(out.items), matched, func(y int) any { return out.items[y] }, func(at func() string, m match) error {
		if m.unchanged {
			return nil // no path to build for an item the injection left as it was
		}
		return patchValue(ops, at(), items[m.x], in.items[m.x], out.items[m.y])
	})
}

// diffFields appends the operations that turn raw, a JSON object whose
// typed value is *before, into *after, field by field: a field left as it
// was costs one typed comparison, and only the changed ones are diffed.
// It reports false, having appended nothing, for a raw value that is not
// an object (a type that writes its own JSON, like IntOrString or
// Quantity) or a struct with inlined fields: the whole value then takes
// the generic path.
func diffFields(ops *[]jsonpatch.Operation, path string, raw json.RawMessage, before, after any) (bool, error) {
	bv, av := reflect.ValueOf(before).Elem(), reflect.ValueOf(after).Elem()
	names, ok := jsonNames(bv.Type())
	if !ok || !isObject(raw) {
		return false, nil
	}
	// On the stack for the few fields an injection changes in one struct.
	var changedBuf [8]int
	var keysBuf [8]string
	var valuesBuf [8]json.RawMessage
	changed, keys := changedBuf[:0], keysBuf[:0]
	for i, name := range names {
		if name != "" && !reflect.DeepEqual(bv.Field(i).Addr().Interface(), av.Field(i).Addr().Interface()) {
			changed, keys = append(changed, i), append(keys, name)
		}
	}
	values := valuesBuf[:0]
	if len(keys) > len(valuesBuf) {
		values = make([]json.RawMessage, 0, len(keys))
	}
	values = values[:len(keys)]
	rawFields(raw, keys, values) // one pass over the object for every changed field
	for n, i := range changed {
		bf, af := bv.Field(i).Addr(), av.Field(i).Addr()
		if bf.Elem().Kind() != reflect.Struct { // structs stay behind their pointer: diffFields reads them there
			bf, af = bf.Elem(), af.Elem()
		}
		if err := patchValue(ops, path+"/"+escapePointer(keys[n]), values[n], bf.Interface(), af.Interface()); err != nil {
			return true, err
		}
	}
	return true, nil
}

// structInfo caches, per struct type, the JSON names of its fields (nil
// when a field is inlined) and the index of its name field (-1: none), the
// name of a struct with inlined fields included.
type structInfo struct {
	names []string
	name  int
}

var structInfos sync.Map

func infoOf(t reflect.Type) structInfo {
	if info, ok := structInfos.Load(t); ok {
		return info.(structInfo)
	}
	info := structInfo{name: -1}
	inlined := false
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case !f.IsExported() || name == "-":
			name = ""
		case name == "": // a volume's source: named, but not diffed field by field
			inlined = true
		case tag == "name" && f.Type.Kind() == reflect.String:
			info.name = i
		}
		info.names = append(info.names, name)
	}
	if inlined {
		info.names = nil
	}
	structInfos.Store(t, info)
	return info
}

// jsonNames are the JSON names of a struct's fields ("" for a field left
// out of JSON); false when a field is inlined.
func jsonNames(t reflect.Type) ([]string, bool) {
	names := infoOf(t).names
	return names, names != nil
}

// nameIndex is the index of a struct's always-written "name" field.
func nameIndex(t reflect.Type) (int, bool) {
	info := infoOf(t)
	return info.name, info.name >= 0
}
