package seed_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/angryninja/opencode-injector/test/rootonly"
)

// cgroupV1Memory is where a cgroup v1 memory controller is mounted.
const cgroupV1Memory = "/sys/fs/cgroup/memory"

// memoryCgroup is a memory cgroup of the test's own with a limit: where
// the kernel judges a pod's init container, page cache included, and kills
// it when reclaim cannot keep it under the limit.
type memoryCgroup struct{ dir string }

// newMemoryCgroup creates a child cgroup limited to limit bytes. Without
// root or cgroup v1 the test is skipped with the reason (rootonly's rule).
func newMemoryCgroup(t *testing.T, limit int64) *memoryCgroup {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		rootonly.Unavailable(t, why)
	}
	if os.Geteuid() != 0 {
		unavailable("not root: cannot create a memory cgroup")
	}
	if _, err := os.Stat(filepath.Join(cgroupV1Memory, "memory.limit_in_bytes")); err != nil {
		unavailable("no cgroup v1 memory controller at " + cgroupV1Memory)
	}
	dir, err := os.MkdirTemp(cgroupV1Memory, "seed-test-")
	if err != nil {
		unavailable(fmt.Sprintf("cannot create a memory cgroup: %v", err))
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the cgroup: %v", err)
		}
	})
	c := &memoryCgroup{dir: dir}
	c.set(t, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	c.set(t, "memory.oom_control", "0") // the kernel kills, as it does a container
	return c
}

func (c *memoryCgroup) set(t *testing.T, file, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, file), []byte(value), 0o644); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// enter makes cmd move itself into the cgroup before it execs its program,
// so everything the program charges is counted.
func (c *memoryCgroup) enter(cmd *exec.Cmd) {
	cmd.Args = append([]string{"/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(c.dir, "cgroup.procs"), cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
}

// maxUsageMiB is the cgroup's peak charge (RSS and page cache) in MiB.
func (c *memoryCgroup) maxUsageMiB(t *testing.T) float64 {
	t.Helper()
	return float64(c.value(t, "memory.max_usage_in_bytes", "")) / (1 << 20)
}

// watch samples the cgroup every 5 ms until the returned function is
// called, which says what filled it at the highest sample: anonymous
// memory (the heap) and page cache, dirty or not. Sampled, so it can miss
// the true peak by a little; max_usage_in_bytes is the peak.
func (c *memoryCgroup) watch(t *testing.T) func() string {
	t.Helper()
	done, result := make(chan struct{}), make(chan string)
	go func() {
		var usage int64
		var at string
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				result <- at
				return
			case <-tick.C:
			}
			stat, err := os.ReadFile(filepath.Join(c.dir, "memory.stat"))
			if err != nil {
				continue
			}
			m := map[string]float64{}
			for _, line := range strings.Split(string(stat), "\n") {
				if k, v, ok := strings.Cut(line, " "); ok {
					n, _ := strconv.ParseFloat(v, 64)
					m[k] = n / (1 << 20)
				}
			}
			if u := int64(m["rss"] + m["cache"]); u > usage {
				usage = u
				at = fmt.Sprintf("rss %.1f MiB, page cache %.1f MiB (%.1f MiB dirty)", m["rss"], m["cache"], m["dirty"])
			}
		}
	}()
	return func() string {
		close(done)
		return <-result
	}
}

// oomKills is how many processes the kernel killed for the cgroup's limit.
func (c *memoryCgroup) oomKills(t *testing.T) int64 {
	t.Helper()
	return c.value(t, "memory.oom_control", "oom_kill ")
}

// value reads a number from a cgroup file: the whole file, or the line
// that starts with key.
func (c *memoryCgroup) value(t *testing.T, file, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", file, line, err)
			}
			return n
		}
	}
	t.Fatalf("%s: no %q in %q", file, key, b)
	return 0
}
