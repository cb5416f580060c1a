package seed

import (
	"fmt"
	"os"
	"runtime"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
)

// resolve hashes every delta, walking each delta tree from its base (an
// object stored whole) down to its leaves. The walk keeps the chain from
// the base to the object being built. A link is kept while it has children
// left and the budget allows; when the next step needs the room, the links
// nearest the base are dropped first, and a dropped link a later child
// needs is rebuilt from the pack on disk (its base inflated again, the
// deltas down to it applied again), as git's index-pack does with its
// delta base cache. Everything the walk holds is counted, so it stays
// within the budget the scan checked each single delta against.
func (s *packScan) resolve(f *os.File, size int64) error {
	w := &deltaWalk{scan: s, pack: newPackReader(s, f, size), waiting: map[plumbing.Hash][]int{}}
	if s.budget.limit > 0 {
		w.max = max(s.budget.max, 1)
	}
	n := len(s.objs)
	// Children by parent: OFS deltas by their base's offset, REF deltas by
	// their base's hash (bases within the pack; a clone gets no thin pack).
	w.first, w.next = make([]int32, n), make([]int32, n)
	for i := range w.first {
		w.first[i], w.next[i] = -1, -1
	}
	for i := n - 1; i >= 0; i-- {
		if s.objs[i].disk != packOFSDelta {
			continue
		}
		base := s.objs[i].base
		p := sort.Search(i, func(j int) bool { return s.objs[j].offset >= base })
		if p == i || s.objs[p].offset != base {
			return fmt.Errorf("pack: object at %d: no object at its base offset %d", s.objs[i].offset, base)
		}
		w.link(p, i)
	}
	for i, h := range s.refs {
		w.waiting[h] = append(w.waiting[h], i)
	}
	for i := range s.objs {
		o := &s.objs[i]
		if o.disk == packOFSDelta || o.disk == packREFDelta {
			continue
		}
		if _, hasRefs := w.waiting[o.hash]; w.first[i] < 0 && !hasRefs {
			w.resolved++
			continue
		}
		w.chain = append(w.chain[:0], chainLink{obj: i})
		if err := w.descend(0); err != nil {
			return err
		}
		w.drop(0)
	}
	s.peakHeld = w.peak
	if w.resolved != n {
		return fmt.Errorf("pack: %d of %d objects are deltas onto objects the pack does not hold", n-w.resolved, n)
	}
	return nil
}

// deltaWalk is the state of resolve's walk.
type deltaWalk struct {
	scan        *packScan
	pack        *packReader
	first, next []int32                 // each object's children, as linked lists
	waiting     map[plumbing.Hash][]int // REF deltas by their base's hash
	chain       []chainLink             // from the tree's base to the object being built
	held        int64                   // bytes of content the chain keeps
	peak        int64                   // the most held ever was
	max         int64                   // what the walk may hold; 0: no limit
	garbage     int64                   // bytes dropped since the last collection
	resolved    int
}

// chainLink is one object on the chain; content nil: dropped, rebuilt from
// the link above it when needed.
type chainLink struct {
	obj     int
	content []byte
}

func (w *deltaWalk) link(parent, child int) {
	w.next[child] = w.first[parent]
	w.first[parent] = int32(child)
}

// descend builds and hashes the children of chain[depth], and theirs.
func (w *deltaWalk) descend(depth int) error {
	parent := w.chain[depth].obj
	s := w.scan
	w.resolved++
	if refs, ok := w.waiting[s.objs[parent].hash]; ok {
		delete(w.waiting, s.objs[parent].hash)
		for _, c := range refs {
			w.link(parent, c)
		}
	}
	if depth > maxDeltaDepth {
		return fmt.Errorf("pack: delta chain deeper than %d", maxDeltaDepth)
	}
	for c := w.first[parent]; c >= 0; c = w.next[c] {
		target, err := w.build(depth, int(c))
		if err != nil {
			return err
		}
		child := &s.objs[c]
		child.typ = s.objs[parent].typ
		child.hash = plumbing.ComputeHash(child.typ, target)
		if w.next[c] < 0 {
			w.drop(depth) // its last child: not needed again
		}
		w.chain = append(w.chain[:depth+1], chainLink{obj: int(c), content: target})
		w.hold(target)
		if err := w.descend(depth + 1); err != nil {
			return err
		}
		w.drop(depth + 1)
		w.chain = w.chain[:depth+1]
	}
	return nil
}

// build applies delta object c to the content of chain[k], rebuilding that
// first when it was dropped.
func (w *deltaWalk) build(k, c int) ([]byte, error) {
	base, err := w.content(k)
	if err != nil {
		return nil, err
	}
	o := &w.scan.objs[c]
	w.reserve(o.size+o.result, k)
	delta, err := w.pack.inflate(c)
	if err != nil {
		return nil, err
	}
	target, err := applyDelta(base, delta)
	w.discard(len(delta))
	if err != nil {
		return nil, fmt.Errorf("pack: object at %d: %w", o.offset, err)
	}
	return target, nil
}

// content is chain[k]'s content, rebuilt from the pack when it was dropped.
func (w *deltaWalk) content(k int) ([]byte, error) {
	l := &w.chain[k]
	if l.content != nil {
		return l.content, nil
	}
	var err error
	if k == 0 { // the tree's base, stored whole
		w.reserve(w.scan.objs[l.obj].size, -1)
		l.content, err = w.pack.inflate(l.obj)
	} else {
		l.content, err = w.build(k-1, l.obj)
	}
	if err != nil {
		return nil, err
	}
	w.hold(l.content)
	return l.content, nil
}

// reserve drops kept links, nearest the base first and never chain[inUse],
// until need more bytes fit within what the walk may hold.
func (w *deltaWalk) reserve(need int64, inUse int) {
	for k := 0; w.max > 0 && w.held+need > w.max && k < len(w.chain); k++ {
		if k != inUse {
			w.drop(k)
		}
	}
}

func (w *deltaWalk) hold(content []byte) {
	w.held += int64(len(content))
	w.peak = max(w.peak, w.held)
}

func (w *deltaWalk) drop(k int) {
	n := len(w.chain[k].content)
	w.held -= int64(n)
	w.chain[k].content = nil
	w.discard(n)
}

// collectAfter is how much garbage the walk leaves before it collects it.
// Left to the Go memory limit, garbage filled the heap up to that limit
// beside what the walk held (collections run concurrently with the next
// 30 MiB allocation, and overshoot): at 256Mi the cgroup's peak was 219 MiB
// where collecting on the walk's drops gives 189 MiB (BENCHMARKS.md). A
// collection is cheap here: the heap is mostly byte slices, with nothing
// in them to scan.
const collectAfter = memoryReserve / 2

// discard counts n bytes the walk no longer references, and collects them
// once they add up to collectAfter (under a memory limit only).
func (w *deltaWalk) discard(n int) {
	if w.max == 0 {
		return
	}
	w.garbage += int64(n)
	if w.garbage >= collectAfter {
		runtime.GC()
		w.garbage = 0
	}
}
