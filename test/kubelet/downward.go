package kubelet

import (
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ResourceFieldValue resolves a downward API resourceFieldRef as the
// kubelet does: the named container's (else c's) request or limit, divided
// by the divisor (default 1) and rounded up; CPU in millicores' terms.
func (p *Pod) ResourceFieldValue(c corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" {
		var err error
		if c, err = p.Container(ref.ContainerName); err != nil {
			return "", err
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	list := map[string]corev1.ResourceList{"limits": c.Resources.Limits, "requests": c.Resources.Requests}[kind]
	q, set := list[corev1.ResourceName(name)]
	if !ok || !set {
		// The kubelet would give the node's allocatable for an unset limit.
		return "", fmt.Errorf("container %s: %s is not set", c.Name, ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor.Set(1)
	}
	if name == string(corev1.ResourceCPU) {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}
