package webhook

import (
	"fmt"
	"slices"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// BenchmarkDuplicateContainers is a review of a request the API server
// would refuse only after admission: k containers all named "app", alike
// (300 env entries each), the last one mounting the workspace claim beside
// the seed init container, without a record. Stripping by name changes the
// last container and injecting changes the first, so the container list's
// middle goes through the bounded table (k*k <= 64Ki cells), every cell
// comparing two whole containers of one name: doubling k doubles the
// request and quadruples the review (126: 1 MB, 0.28 s; 252: 2 MB, 1.1 s).
func BenchmarkDuplicateContainers(b *testing.B) {
	for _, k := range []int{126, 252} {
		in := injectiontest.GoldenCases(b)["app-template-flux"].DeepCopy()
		injected, _ := mustInject(b, in)
		ps := &in.Spec.Template.Spec
		app := ps.Containers[0]
		app.Env = nil
		for i := range 300 {
			app.Env = append(app.Env, corev1.EnvVar{Name: fmt.Sprintf("E%d", i), Value: "v"})
		}
		ps.Containers = nil
		for range k {
			ps.Containers = append(ps.Containers, *app.DeepCopy())
		}
		ips := &injected.Spec.Template.Spec
		ps.InitContainers = append([]corev1.Container{ips.InitContainers[0]}, ps.InitContainers...)
		mounts := ips.Containers[0].VolumeMounts
		last := &ps.Containers[k-1]
		last.VolumeMounts = append(last.VolumeMounts, mounts[slices.IndexFunc(mounts, func(m corev1.VolumeMount) bool { return m.MountPath == contract.DataMountPath })])
		tc := reviewCase{fmt.Sprintf("flux-%d-app-containers/create", k), reviewBody(b, request(admissionv1.Create, injectiontest.MustJSON(b, in), nil))}
		if ratio, ok := benchmarkBeside(b, tc); ok {
			fmt.Printf("%s (%d KB): %.2fx (no target)\n", tc.name, len(tc.body)>>10, ratio)
		}
	}
}
