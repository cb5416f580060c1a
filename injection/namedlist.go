package injection

import (
	"encoding/json"
	"fmt"
	"reflect"

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
		if reflect.DeepEqual(in.items[x], out.items[y]) {
			return nil
		}
		var r, i, o any
		if err := json.Unmarshal(rawItems[x], &r); err != nil {
			return fmt.Errorf("decode %s: %w", p, err)
		}
		if err := roundTrip(in.items[x], &i); err != nil {
			return err
		}
		if err := roundTrip(out.items[y], &o); err != nil {
			return err
		}
		diff(ops, p, r, i, o)
		return nil
	})
}
