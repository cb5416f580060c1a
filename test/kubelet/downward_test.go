package kubelet_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	"github.com/angryninja/opencode-injector/test/kubelet"
)

// TestSeedMemoryLimitFromTheDownwardAPI: the injected seed sees its own
// memory limit in bytes, as the kubelet fills OPENCODE_SEED_MEMORY_LIMIT.
func TestSeedMemoryLimitFromTheDownwardAPI(t *testing.T) {
	d := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	d.Annotations[contract.AnnotationSeedMemory] = "1Gi"
	out, _, err := injection.Mutate(d, nil, injection.DefaultSettings(injection.ImageRepository+":v0.0.0-test"))
	if err != nil {
		t.Fatal(err)
	}
	pod := &kubelet.Pod{Spec: out.Spec.Template.Spec}
	seed, err := pod.Container(contract.SeedContainerName)
	if err != nil {
		t.Fatal(err)
	}
	env, err := pod.Env(seed)
	if err != nil {
		t.Fatal(err)
	}
	if want := contract.EnvSeedMemoryLimit + "=1073741824"; !slices.Contains(env, want) {
		t.Errorf("the seed's env lacks %s: %q", want, env)
	}
}

func TestResourceFieldValue(t *testing.T) {
	c := corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100M")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
	}}
	pod := &kubelet.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	for _, tc := range []struct {
		resource, divisor, want string
	}{
		{"limits.cpu", "", "1"}, // rounded up to whole cores
		{"limits.cpu", "1m", "500"},
		{"requests.memory", "", "100000000"},
		{"requests.memory", "1Mi", "96"},
	} {
		ref := &corev1.ResourceFieldSelector{ContainerName: "app", Resource: tc.resource}
		if tc.divisor != "" {
			ref.Divisor = resource.MustParse(tc.divisor)
		}
		if got, err := pod.ResourceFieldValue(c, ref); err != nil || got != tc.want {
			t.Errorf("%s / %q = %q, %v; want %s", tc.resource, tc.divisor, got, err, tc.want)
		}
	}
	if got, err := pod.ResourceFieldValue(c, &corev1.ResourceFieldSelector{Resource: "limits.memory"}); err == nil {
		t.Errorf("an unset limit gave %q", got)
	}
}
