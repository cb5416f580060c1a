package injection

import (
	"math/rand/v2"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// lcs matches the unchanged items at both ends without the table: on
// random lists (few names, so many duplicates; items changed, inserted,
// removed, at the ends too) and on random weights, its matching is valid,
// as heavy as the full table's and as long, and where it differs it only
// picks another of two identical items. lcsUnique, run on a middle that
// starts past a matched prefix, is as heavy as the table on the same
// middle when names are unique.
func TestLCSTrimmedIsAsHeavyAsTheTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	type item struct{ name, value int }
	for iter := range 100000 {
		names := 1 + rng.IntN(4)
		randomItem := func() item { return item{rng.IntN(names), rng.IntN(2)} }
		old := make([]item, rng.IntN(9))
		for i := range old {
			old[i] = randomItem()
		}
		var new []item
		for _, it := range old {
			switch rng.IntN(7) {
			case 0: // removed
			case 1: // another inserted before it
				new = append(new, randomItem(), it)
			case 2: // changed
				new = append(new, item{it.name, 1 - it.value})
			default:
				new = append(new, it)
			}
		}
		if rng.IntN(3) == 0 {
			new = append(new, randomItem())
		}
		if rng.IntN(3) == 0 {
			new = append([]item{randomItem()}, new...)
		}
		random := make([][]int, len(old)) // any weights of 0, 1 and 2
		for x := range random {
			random[x] = make([]int, len(new))
			for y := range random[x] {
				random[x][y] = rng.IntN(3)
			}
		}
		byItem := iter%2 == 0
		weight := func(x, y int) int {
			switch {
			case !byItem:
				return random[x][y]
			case old[x].name != new[y].name:
				return 0
			case old[x] == new[y]:
				return 2
			}
			return 1
		}
		key := func(l []item) func(int) string { return func(i int) string { return strconv.Itoa(l[i].name) } }
		total := func(pairs []match) int { return matchedWeight(t, old, new, pairs, weight) }
		table := lcsTable(nil, 0, len(old), len(new), weight)
		got := lcs(len(old), len(new), weight, key(old), key(new))
		if total(got) != total(table) || len(got) != len(table) {
			t.Fatalf("%v to %v: lcs matches %+v (weight %d), the table %+v (weight %d)", old, new, got, total(got), table, total(table))
		}
		for i := range got {
			if byItem && (old[got[i].x] != old[table[i].x] || new[got[i].y] != new[table[i].y]) {
				t.Fatalf("%v to %v: lcs matches %+v, the table %+v: not the same items", old, new, got, table)
			}
		}
	}
	// lcsUnique past a prefix: unique names, the middle moved and changed.
	for range 2000 {
		n, off := 1+rng.IntN(30), rng.IntN(5)
		old, new := make([]int, off+n), make([]int, off)
		for i := range old {
			old[i] = i
		}
		copy(new, old)
		for _, name := range rng.Perm(n) {
			if rng.IntN(5) > 0 {
				new = append(new, off+name)
			}
		}
		changed := rng.Perm(off + n)
		weight := func(x, y int) int {
			switch {
			case old[x] != new[y]:
				return 0
			case x >= off && changed[x]%3 == 0:
				return 1
			}
			return 2
		}
		key := func(l []int) func(int) string { return func(i int) string { return strconv.Itoa(l[i]) } }
		sum := func(pairs []match) int { return matchedWeight(t, old, new, pairs, weight) }
		table := lcsTable(nil, off, n, len(new)-off, weight)
		if got := lcsUnique(nil, off, n, len(new)-off, weight, key(old), key(new)); sum(got) != sum(table) {
			t.Fatalf("%v to %v past %d: lcsUnique's run %+v weighs %d, the table's %+v %d", old, new, off, got, sum(got), table, sum(table))
		}
	}
}

// matchedWeight is the total weight of the matched pairs of old and new,
// failing t when they are not a valid matching: pairs of the same items,
// marked unchanged when they weigh 2, increasing on both sides.
func matchedWeight(t *testing.T, old, new any, pairs []match, weight func(x, y int) int) int {
	t.Helper()
	sum := 0
	for i, p := range pairs {
		if w := weight(p.x, p.y); w == 0 || (w == 2) != p.unchanged || i > 0 && (p.x <= pairs[i-1].x || p.y <= pairs[i-1].y) {
			t.Fatalf("%v to %v: invalid match %+v in %+v", old, new, p, pairs)
		}
		sum += weight(p.x, p.y)
	}
	return sum
}

// A list longer than the table allows, whose items share one name, is
// patched only where the injection changed it when the change is at one
// end (env appended to, the seed put before the init containers): the
// unchanged items at the other end are matched without the table, so they
// keep their place and unknown fields rather than being removed and added.
func TestLongListsOfOneNameArePatchedOnlyWhereChanged(t *testing.T) {
	const n = 2000 // the table would need n*n cells
	for name, edit := range map[string]func(*corev1.PodSpec){
		"env": func(ps *corev1.PodSpec) {
			ps.Containers[0].Env = nil
			for i := range n {
				ps.Containers[0].Env = append(ps.Containers[0].Env, corev1.EnvVar{Name: "SAME", Value: strconv.Itoa(i)})
			}
		},
		// The fixture's own first entry, the password, which the injection
		// replaces and moves: the SAME entries after it are matched in order,
		// not removed and added back (4,020 operations when only names
		// unique in the result were matched).
		"env after the password": func(ps *corev1.PodSpec) {
			for i := range n {
				ps.Containers[0].Env = append(ps.Containers[0].Env, corev1.EnvVar{Name: "SAME", Value: strconv.Itoa(i)})
			}
		},
		"init containers": func(ps *corev1.PodSpec) {
			for i := range n {
				ps.InitContainers = append(ps.InitContainers, corev1.Container{Name: "init", Image: "busybox:" + strconv.Itoa(i)})
			}
		},
	} {
		in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
		edit(&in.Spec.Template.Spec)
		raw := injectiontest.MustJSON(t, in)
		m, err := MutateJSON(raw, nil, testSettings())
		if err != nil || m.Denied != nil {
			t.Fatalf("%s: %v %v", name, err, m.Denied)
		}
		if len(m.Patch) > 50 {
			t.Errorf("%s: %d patch operations for a list of %d items the injection changed at one end", name, len(m.Patch), n)
		}
		injectiontest.AssertEqual(t, name+": the patched request", m.Mutated, injectiontest.Decode(t, injectiontest.ApplyPatch(t, raw, m.Patch)))
	}
}
