package injection

import (
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Mutate writes into a copy of only what it may change; everything else
// (managedFields, status, the pod template's other fields, a container's
// probes and ports) is shared with its input. A deep copy of a whole
// request, managedFields included, cost more than the injection's own
// work, and the output's unchanged parts being the input's own also make
// the patch builder's comparisons of them immediate.

// mutableCopy is a copy of d whose parts Mutate writes are its own: the
// annotations, the strategy (a value), and the pod template's
// (mutableTemplate). The labels stay shared: Mutate only reads them, and
// its output is read only.
func mutableCopy(d *appsv1.Deployment) *appsv1.Deployment {
	c := *d
	c.Annotations = maps.Clone(d.Annotations)
	c.Spec.Template = mutableTemplate(&d.Spec.Template)
	return &c
}

// mutableTemplate is a copy of t whose containers, init containers,
// volumes and pod security context are its own.
func mutableTemplate(t *corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	c := *t
	c.Spec.InitContainers = mutableContainers(t.Spec.InitContainers)
	c.Spec.Containers = mutableContainers(t.Spec.Containers)
	c.Spec.Volumes = slices.Clone(t.Spec.Volumes) // items are removed or added, never edited
	c.Spec.SecurityContext = t.Spec.SecurityContext.DeepCopy()
	return c
}

// mutableContainers is a copy of cs whose env, mounts and resources are
// their own: what injecting and stripping a container write.
func mutableContainers(cs []corev1.Container) []corev1.Container {
	out := slices.Clone(cs)
	for i := range out {
		c := &out[i]
		c.Env = slices.Clone(c.Env) // entries are replaced, never edited
		c.VolumeMounts = slices.Clone(c.VolumeMounts)
		c.Resources = *c.Resources.DeepCopy()
	}
	return out
}
