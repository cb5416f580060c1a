package seed

import (
	"fmt"
	"runtime/debug"
	"strconv"

	"github.com/angryninja/opencode-injector/contract"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The seed's memory: its Go memory limit is memoryShare of its container's
// limit, so the garbage collector works harder before the kernel kills it;
// the rest is for what the kernel charges beside the heap, the page cache
// of the files the seed writes and reads above all (kept small: see
// writeBehind and dropReadAbove). A delta fits when its base, its data and
// the object it builds, plus memoryReserve for everything else the clone
// keeps, stay within that; an object stored whole streams, and needs no
// more than the reserve.
const (
	memoryShare   = 85 // percent of the container's limit
	memoryReserve = 24 << 20
	mib           = 1 << 20
)

// parseMemoryLimit reads the container's memory limit: bytes, as the
// downward API gives them, or a quantity like 256Mi. Empty means none.
func parseMemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return n, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return 0, fmt.Errorf("%q: give the container's memory limit in bytes or as a quantity like 256Mi", s)
	}
	return q.Value(), nil
}

// budget is what one object may need while the clone resolves it; the
// zero budget has no limit.
type budget struct {
	limit int64 // the container's memory limit
	max   int64 // what resolving one delta may hold
}

func (b budget) fits(need int64) bool { return b.limit == 0 || need <= b.max }

func newBudget(limit int64) budget {
	return budget{limit: limit, max: limit*memoryShare/100 - memoryReserve}
}

// setMemoryLimit gives the Go runtime its share of the container's limit.
func setMemoryLimit(limit int64) {
	if limit > 0 {
		debug.SetMemoryLimit(limit * memoryShare / 100)
	}
}

// tooLarge is a delta in the pack that needs more than the budget.
type tooLarge struct {
	index, count uint32
	size, base   int64 // the object's size and its base's
	budget       budget
}

func (e *tooLarge) Error() string {
	return fmt.Sprintf("object %d of %d in the pack is a %d MiB file stored as a delta onto a %d MiB version of it, and building it takes both in memory; the seed's memory limit of %d MiB leaves room for %d MiB (%d%% of the limit, less %d MiB for the rest of the clone)",
		e.index+1, e.count, ceilMiB(e.size), ceilMiB(e.base), ceilMiB(e.budget.limit), max(0, e.budget.max/mib), memoryShare, memoryReserve/mib)
}

// need is the container limit that would fit the object, in MiB rounded up
// to 64 MiB, and a round example at or above it (a power of two).
func (e *tooLarge) need() (string, string) {
	need := (ceilMiB((e.size+e.base+memoryReserve)*100/memoryShare) + 63) / 64 * 64
	example := int64(256)
	for example < need {
		example *= 2
	}
	ex := strconv.FormatInt(example, 10) + "Mi"
	if example >= 1024 {
		ex = strconv.FormatInt(example/1024, 10) + "Gi"
	}
	return strconv.FormatInt(need, 10) + "Mi", ex
}

func ceilMiB(n int64) int64 { return (n + mib - 1) / mib }

func memoryError(e *tooLarge, url string) error {
	need, example := e.need()
	return fail(ExitMemory, nil, "clone %s: not enough memory: %v. Nothing was written to the claim. Raise the seed's memory limit with annotation %s on the Deployment to at least %s, for example `%s: %s`",
		url, e, contract.AnnotationSeedMemory, need, contract.AnnotationSeedMemory, example)
}
