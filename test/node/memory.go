package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// MemoryPeak is the most memory container of pod has used so far, as its
// memory cgroup on the node counts it (cgroup v1's
// memory.max_usage_in_bytes, page cache included).
func MemoryPeak(pod *corev1.Pod, container string) (int64, error) {
	var id string
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == container {
			_, id, _ = strings.Cut(s.ContainerID, "://")
		}
	}
	if id == "" {
		return 0, fmt.Errorf("pod %s has no running container %s", pod.Name, container)
	}
	return memoryPeak(pod, id)
}

// PodMemoryPeak is the most memory pod has used so far, all its containers
// (init containers, whose own cgroups go when they end, included) and its
// sandbox together, as the Pod's memory cgroup counts it.
func PodMemoryPeak(pod *corev1.Pod) (int64, error) { return memoryPeak(pod, "") }

// PodRSS is the anonymous memory pod uses now (memory.stat's total_rss of
// the Pod's memory cgroup: its processes' own memory, page cache not
// included).
func PodRSS(pod *corev1.Pod) (int64, error) {
	file, err := cgroupFile(pod, "", "memory.stat")
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "total_rss "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no total_rss", file)
}

// memoryPeak reads memory.max_usage_in_bytes of the cgroup of pod's
// container id, or of pod's own cgroup when id is "".
func memoryPeak(pod *corev1.Pod, id string) (int64, error) {
	file, err := cgroupFile(pod, id, "memory.max_usage_in_bytes")
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	peak, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	return peak, nil
}

// cgroupFile is the path of file in the memory cgroup of pod's container
// id, or of pod's own cgroup when id is "".
func cgroupFile(pod *corev1.Pod, id, file string) (string, error) {
	// The kubelet's cgroupfs layout: kubepods[/<qos class>]/pod<uid>/<id>.
	root := filepath.Join("/sys/fs/cgroup/memory", CgroupParent)
	var files []string
	for _, qos := range []string{"kubepods/*", "kubepods"} {
		found, err := filepath.Glob(filepath.Join(root, qos, "pod"+string(pod.UID), id, file))
		if err != nil {
			return "", err
		}
		files = append(files, found...)
	}
	if len(files) != 1 {
		return "", fmt.Errorf("find the memory cgroup of %s %s under %s: %d found", pod.Name, id, root, len(files))
	}
	return files[0], nil
}
