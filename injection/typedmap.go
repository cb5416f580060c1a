package injection

import (
	"reflect"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/api/equality"
)

// diffMap appends the operations that turn a map (annotations, a
// ResourceList) present in the request as before into after, key by key:
// a key the injection left as it was costs one comparison, a new or
// changed one is written as its typed value, a removed one removed. Every
// key of the request's JSON object is a key of before (a map has no field
// these types could not know), so the typed maps say it all. It reports
// false, having appended nothing, for anything but maps with string keys.
func diffMap(ops *[]jsonpatch.Operation, path string, before, after any) bool {
	bv, av := reflect.ValueOf(before), reflect.ValueOf(after)
	if bv.Kind() != reflect.Map || bv.Type().Key().Kind() != reflect.String || av.Type() != bv.Type() {
		return false
	}
	keys := make([]string, 0, av.Len())
	for it := av.MapRange(); it.Next(); {
		keys = append(keys, it.Key().String())
	}
	slices.Sort(keys)
	keyOf := func(k string) reflect.Value { return reflect.ValueOf(k).Convert(bv.Type().Key()) }
	for _, k := range keys {
		a, b := av.MapIndex(keyOf(k)), bv.MapIndex(keyOf(k))
		switch {
		case !b.IsValid():
			*ops = append(*ops, jsonpatch.NewOperation("add", path+"/"+escapePointer(k), a.Interface()))
		case !equality.Semantic.DeepEqual(b.Interface(), a.Interface()): // Quantities by value
			*ops = append(*ops, jsonpatch.NewOperation("replace", path+"/"+escapePointer(k), a.Interface()))
		}
	}
	var removed []string
	for it := bv.MapRange(); it.Next(); {
		if !av.MapIndex(it.Key()).IsValid() {
			removed = append(removed, it.Key().String())
		}
	}
	slices.Sort(removed)
	for _, k := range removed {
		*ops = append(*ops, jsonpatch.NewOperation("remove", path+"/"+escapePointer(k), nil))
	}
	return true
}
