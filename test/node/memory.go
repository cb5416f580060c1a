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

// memoryPeak reads memory.max_usage_in_bytes of the cgroup of pod's
// container id, or of pod's own cgroup when id is "".
func memoryPeak(pod *corev1.Pod, id string) (int64, error) {
	// The kubelet's cgroupfs layout: kubepods[/<qos class>]/pod<uid>/<id>.
	root := filepath.Join("/sys/fs/cgroup/memory", CgroupParent)
	var files []string
	for _, qos := range []string{"kubepods/*", "kubepods"} {
		found, err := filepath.Glob(filepath.Join(root, qos, "pod"+string(pod.UID), id, "memory.max_usage_in_bytes"))
		if err != nil {
			return 0, err
		}
		files = append(files, found...)
	}
	if len(files) != 1 {
		return 0, fmt.Errorf("find the memory cgroup of %s %s under %s: %d found", pod.Name, id, root, len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", files[0], err)
	}
	peak, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", files[0], err)
	}
	return peak, nil
}
