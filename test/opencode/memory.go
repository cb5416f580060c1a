package opencode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// processTree is pid and every process it started, read from /proc, each
// mapped to its parent (0 for pid); a process that exits while the tree is
// read is left out.
func processTree(pid int) map[int]int {
	tree := map[int]int{}
	type proc struct{ pid, parent int }
	for queue := []proc{{pid, 0}}; len(queue) > 0; queue = queue[1:] {
		p := queue[0]
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
		if err != nil {
			continue
		}
		tree[p.pid] = p.parent
		for _, t := range tasks {
			children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p.pid, t.Name()))
			for _, f := range strings.Fields(string(children)) {
				if c, err := strconv.Atoi(f); err == nil {
					queue = append(queue, proc{c, p.pid})
				}
			}
		}
	}
	return tree
}

// statusBytes reads the kB fields of /proc/<pid>/status named in keys, in
// bytes; ok is false when the process is gone.
func statusBytes(pid int, keys ...string) (values map[string]int64, ok bool) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, false
	}
	values = map[string]int64{}
	for _, line := range strings.Split(string(status), "\n") {
		for _, k := range keys {
			if v, found := strings.CutPrefix(line, k+":"); found {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				values[k] = kb << 10
			}
		}
	}
	return values, true
}

// commandLine is what /proc says process pid runs, its arguments joined.
func commandLine(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// pss is the proportional set size of process pid (its resident pages,
// each page shared with n processes counted 1/n), in bytes: summed over a
// tree it counts a page once, where VmRSS counts the pages a fork shares
// with its parent twice.
func pss(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, true
		}
	}
	return 0, false
}

// Process is one process of a sampled tree, with its own peak resident
// memory (the kernel's VmHWM, last seen since its last exec).
type Process struct {
	PID     int
	Command string
	PeakRSS int64
}

// Peak is what a PeakSampler saw.
type Peak struct {
	// Tree is the largest sum of the tree's PSS at one poll: the tree's
	// peak resident memory, within the poll interval.
	Tree int64
	// WorkingSet is the largest working set of the cgroup (usage less
	// inactive page cache, what the kubelet reports and evicts on), when
	// one was given.
	WorkingSet int64
}

// PeakSampler polls a process tree's memory, and a cgroup's, until Stop.
type PeakSampler struct {
	root   int
	cgroup *MemoryCgroup
	mu     sync.Mutex
	peak   Peak
	procs  map[int]*Process
	stop   chan struct{}
	done   chan struct{}
}

// SamplePeak starts polling the tree under pid (and cgroup, if not nil)
// every interval.
func SamplePeak(pid int, cgroup *MemoryCgroup, interval time.Duration) *PeakSampler {
	s := &PeakSampler{root: pid, cgroup: cgroup, procs: map[int]*Process{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.poll()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *PeakSampler) poll() {
	var tree int64
	s.mu.Lock()
	defer s.mu.Unlock()
	procs := processTree(s.root)
	commands := map[int]string{}
	for pid := range procs {
		commands[pid] = commandLine(pid)
	}
	for pid, parent := range procs {
		v, ok := statusBytes(pid, "VmHWM")
		command := commands[pid]
		// A child that has not exec'd yet runs its parent's command on its
		// parent's pages: counted with the parent, not again.
		if !ok || command == "" || command == commands[parent] {
			continue
		}
		if n, ok := pss(pid); ok {
			tree += n
		}
		p := s.procs[pid]
		if p == nil || p.Command != command { // new, or exec'd since: VmHWM starts again
			p = &Process{PID: pid, Command: command}
			s.procs[pid] = p
		}
		p.PeakRSS = max(p.PeakRSS, v["VmHWM"])
	}
	s.peak.Tree = max(s.peak.Tree, tree)
	if s.cgroup != nil {
		if ws, err := s.cgroup.WorkingSet(); err == nil {
			s.peak.WorkingSet = max(s.peak.WorkingSet, ws)
		}
	}
}

// Processes are the processes seen so far, largest peak first.
func (s *PeakSampler) Processes() []Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Process, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PeakRSS > out[j].PeakRSS })
	return out
}

// Stop ends the polling (after a last poll) and returns the peaks.
func (s *PeakSampler) Stop() Peak {
	close(s.stop)
	<-s.done
	s.poll()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// memoryRoot is the cgroup v1 memory hierarchy.
const memoryRoot = "/sys/fs/cgroup/memory"

// MemoryCgroup is a child of the cgroup v1 memory hierarchy that measured
// processes run in, as a pod's container does: its max_usage_in_bytes
// counts what the kernel charges to a container (resident memory, page
// cache, kernel memory), the figure a memory limit is compared with.
type MemoryCgroup struct{ Dir string }

// NewMemoryCgroup creates the cgroup name under the memory hierarchy's
// root; it needs cgroup v1 and root.
func NewMemoryCgroup(name string) (*MemoryCgroup, error) {
	if _, err := os.Stat(filepath.Join(memoryRoot, "memory.max_usage_in_bytes")); err != nil {
		return nil, fmt.Errorf("no cgroup v1 memory hierarchy at %s: %w", memoryRoot, err)
	}
	dir := filepath.Join(memoryRoot, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create memory cgroup %s: %w", dir, err)
	}
	return &MemoryCgroup{Dir: dir}, nil
}

// Wrap is the command prefix that moves a process into the cgroup before
// it execs its command (Start's wrap), so all it starts is charged there.
func (c *MemoryCgroup) Wrap() []string {
	return []string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(c.Dir, "cgroup.procs")}
}

// MaxUsage is the cgroup's peak charge since it was made or last reset.
func (c *MemoryCgroup) MaxUsage() (int64, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "memory.max_usage_in_bytes"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// WorkingSet is the cgroup's usage less its inactive page cache, as the
// kubelet computes a container's working set.
func (c *MemoryCgroup) WorkingSet() (int64, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "memory.usage_in_bytes"))
	if err != nil {
		return 0, err
	}
	usage, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, err
	}
	stat, err := os.ReadFile(filepath.Join(c.Dir, "memory.stat"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "total_inactive_file "); ok {
			inactive, _ := strconv.ParseInt(v, 10, 64)
			return max(usage-inactive, 0), nil
		}
	}
	return usage, nil
}

// ResetMaxUsage starts a new peak from the current charge.
func (c *MemoryCgroup) ResetMaxUsage() error {
	return os.WriteFile(filepath.Join(c.Dir, "memory.max_usage_in_bytes"), []byte("0"), 0o644)
}

// Remove deletes the cgroup once its processes have exited.
func (c *MemoryCgroup) Remove() error {
	var err error
	for range 50 {
		if err = os.Remove(c.Dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove memory cgroup %s: %w", c.Dir, err)
}

// EvictFromPageCache drops the cached pages of files (that no process has
// mapped), so the next process that reads them is charged for them, as a
// container starting on a fresh node is for its image's files.
func EvictFromPageCache(files ...string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return fmt.Errorf("evict %s from the page cache: %w", name, err)
		}
	}
	return nil
}
