package injection

import (
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// diffMap appends the operations that turn a map the injection changes
// (annotations, a ResourceList), present in the request as before, into
// after, key by key: a key the injection left as it was costs one
// comparison, a new or changed one is written as its typed value, a
// removed one removed. Every key of the request's JSON object is a key of
// before (a map has no field these types could not know), so the typed
// maps say it all. It reports false, having appended nothing, for any
// other value.
func diffMap(ops *[]jsonpatch.Operation, path string, before, after any) bool {
	switch b := before.(type) {
	case map[string]string:
		diffTypedMap(ops, path, b, after.(map[string]string), func(x, y string) bool { return x == y })
	case corev1.ResourceList:
		diffTypedMap(ops, path, b, after.(corev1.ResourceList), func(x, y resource.Quantity) bool { return x.Cmp(y) == 0 })
	default:
		return false
	}
	return true
}

func diffTypedMap[K ~string, V any](ops *[]jsonpatch.Operation, path string, before, after map[K]V, equal func(V, V) bool) {
	for _, k := range sortedKeys(after) {
		b, had := before[K(k)]
		switch {
		case !had:
			*ops = append(*ops, jsonpatch.NewOperation("add", path+"/"+escapePointer(k), after[K(k)]))
		case !equal(b, after[K(k)]):
			*ops = append(*ops, jsonpatch.NewOperation("replace", path+"/"+escapePointer(k), after[K(k)]))
		}
	}
	for _, k := range sortedKeys(before) {
		if _, kept := after[K(k)]; !kept {
			*ops = append(*ops, jsonpatch.NewOperation("remove", path+"/"+escapePointer(k), nil))
		}
	}
}
