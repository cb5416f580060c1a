package webhook

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Inject is the whole mutation, a pure function: it returns a copy of in
// with the workspace injected (or stripped, when the label is gone), the
// warnings for the user, and an error that denies the request. An injected
// Deployment is first stripped back to what the user wrote, then injected
// again, so the same input always gives the same output and injecting twice
// changes nothing.
func Inject(in *appsv1.Deployment, s Settings) (*appsv1.Deployment, []string, error) {
	if in.DeletionTimestamp != nil {
		return in.DeepCopy(), nil, nil // a way out is never blocked
	}
	d := in.DeepCopy()
	var warnings []string
	injected := IsInjected(d)
	if injected {
		if w := strip(d, s); w != "" {
			warnings = append(warnings, w)
		}
	}
	if !Enabled(d) {
		if injected {
			warnings = append(warnings, "label "+LabelInject+" removed: the workspace injection was removed; the claim and its data are kept")
		}
		return d, warnings, nil
	}
	warnings = append(warnings, unknownKeyWarnings(d.Annotations)...)

	ws, err := ParseWorkspace(d, s)
	if err != nil {
		return nil, warnings, err
	}
	if r := d.Spec.Replicas; r != nil && *r > 1 {
		return nil, warnings, fmt.Errorf("spec.replicas is %d: a workspace runs exactly one pod, since its ReadWriteOnce claim attaches to one node; set replicas to 1 (app-template: controllers.<id>.replicas)", *r)
	}
	ps := &d.Spec.Template.Spec
	ci, err := selectContainer(ps, ws.Container)
	if err != nil {
		return nil, warnings, err
	}
	ws.Container = ps.Containers[ci].Name
	if err := checkCollisions(ps, ci); err != nil {
		return nil, warnings, err
	}

	rec := record{Version: ContractVersion, Container: ws.Container}
	warnings = append(warnings, setStrategy(d, &rec)...)
	ps.Volumes = append(ps.Volumes, volumes(ws)...)
	seed, w := seedContainer(ps, ci, ws, s, &rec)
	warnings = append(warnings, w...)
	ps.InitContainers = append([]corev1.Container{seed}, ps.InitContainers...)
	warnings = append(warnings, injectContainer(&ps.Containers[ci], ws, s, &rec)...)

	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationInjected] = rec.encode()
	return d, warnings, nil
}

// Enabled reports whether d carries the opt-in label.
func Enabled(d *appsv1.Deployment) bool { return d.Labels[LabelInject] == LabelInjectEnabled }

// IsInjected reports whether d carries anything of an earlier injection.
func IsInjected(d *appsv1.Deployment) bool {
	_, annotated := d.Annotations[AnnotationInjected]
	return annotated || slices.ContainsFunc(d.Spec.Template.Spec.InitContainers, func(c corev1.Container) bool {
		return c.Name == SeedContainerName
	})
}

// strip removes an earlier injection by our fixed names and restores what it
// overwrote from the status annotation, when that can be trusted.
func strip(d *appsv1.Deployment, s Settings) (warning string) {
	rec, trusted, warning := readRecord(d)
	delete(d.Annotations, AnnotationInjected)
	if len(d.Annotations) == 0 {
		d.Annotations = nil
	}
	ps := &d.Spec.Template.Spec
	ps.InitContainers = slices.DeleteFunc(ps.InitContainers, func(c corev1.Container) bool { return c.Name == SeedContainerName })
	if len(ps.InitContainers) == 0 {
		ps.InitContainers = nil
	}
	stripVolumes(ps)

	name := rec.Container
	if !trusted {
		// Without a record, find the container the way injection would.
		ws, _ := ParseWorkspace(d, s)
		if ci, err := selectContainer(ps, ws.Container); err == nil {
			name = ps.Containers[ci].Name
		}
	}
	for i := range ps.Containers {
		if ps.Containers[i].Name == name {
			stripContainer(&ps.Containers[i], rec, trusted)
		}
	}
	if trusted {
		if rec.Strategy != nil {
			d.Spec.Strategy = *rec.Strategy
		}
		if rec.FSGroupAdded && ps.SecurityContext != nil {
			ps.SecurityContext.FSGroup = nil
			if equality.Semantic.DeepEqual(*ps.SecurityContext, corev1.PodSecurityContext{}) {
				ps.SecurityContext = nil
			}
		}
	}
	return warning
}

// selectContainer finds the OpenCode container: the named one, else "app",
// else the only one.
func selectContainer(ps *corev1.PodSpec, name string) (int, error) {
	names := make([]string, len(ps.Containers))
	for i, c := range ps.Containers {
		names[i] = c.Name
	}
	if name != "" {
		if i := slices.Index(names, name); i >= 0 {
			return i, nil
		}
		return 0, &AnnotationError{AnnotationContainer, name, "names no container of the pod template (it has " + strings.Join(names, ", ") + ")", "set it to the container that runs OpenCode"}
	}
	if i := slices.Index(names, DefaultContainerName); i >= 0 {
		return i, nil
	}
	if len(names) == 1 {
		return 0, nil
	}
	return 0, fmt.Errorf("the pod template has %d containers (%s) and none is named %q: set annotation %s to the one that runs OpenCode",
		len(names), strings.Join(names, ", "), DefaultContainerName, AnnotationContainer)
}

// setStrategy makes the rollout Recreate: a ReadWriteOnce claim cannot
// attach to two pods on two nodes during a rolling update.
func setStrategy(d *appsv1.Deployment, rec *record) []string {
	recreate := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if d.Spec.Strategy == recreate {
		return nil
	}
	orig := d.Spec.Strategy
	rec.Strategy = &orig
	d.Spec.Strategy = recreate
	return []string{"spec.strategy " + strategyName(orig) + " replaced by Recreate: the workspace's ReadWriteOnce claim cannot attach to two pods during a rollout"}
}

func strategyName(s appsv1.DeploymentStrategy) string {
	if s.Type == "" {
		return string(appsv1.RollingUpdateDeploymentStrategyType) + " (the default)"
	}
	return string(s.Type)
}
