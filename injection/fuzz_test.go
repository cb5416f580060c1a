package injection

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// FuzzInject checks the update semantics as properties, from every golden
// case and fixture, over random user edits to the injected object: injecting
// twice equals once; un-injecting gives the original back; a user's default
// stays; an enforced item is enforced again and un-injection restores the
// user's latest value; MutateJSON's patch on the raw object yields Mutate's
// output; nothing panics. `make test` runs the seed corpus, `make fuzz`
// explores.
func FuzzInject(f *testing.F) {
	cases := fuzzCases(f)
	for i := range cases {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{0, 3, 2, 7, 3, 1, 5, 2, 7, 0})
		f.Add(uint8(i), []byte{4, 1, 6, 2, 8, 3, 9, 4, 10, 1, 11, 0, 1, 9})
	}
	f.Fuzz(func(t *testing.T, pick uint8, edits []byte) {
		in := cases[int(pick)%len(cases)]
		once, _, err := Mutate(in, nil, testSettings())
		if err != nil {
			return // denied: nothing was injected
		}
		assertIdempotent(t, once)
		if !Enabled(once) {
			return // unlabeled or un-injected: nothing to edit
		}
		want := in.DeepCopy()
		delete(want.Labels, contract.LabelInject)
		if !IsInjected(in) {
			injectiontest.AssertEqual(t, "un-injection of a fresh injection", want, uninject(t, once))
		}

		edited := once.DeepCopy()
		expect := applyEdits(edited, edits)
		again, _, err := Mutate(edited, nil, testSettings())
		if err != nil {
			t.Fatalf("an edited workspace was denied: %v", err)
		}
		assertIdempotent(t, again)
		expect.check(t, "after re-injection", again, true)
		expect.check(t, "after un-injection", uninject(t, again), false)

		raw := injectiontest.MustJSON(t, edited)
		m, err := MutateJSON(raw, injectiontest.MustJSON(t, once), testSettings())
		if err != nil {
			t.Fatal(err)
		}
		if m.Denied != nil {
			t.Fatalf("denied: %v", m.Denied)
		}
		injectiontest.AssertEqual(t, "the patch", again, injectiontest.Decode(t, injectiontest.ApplyPatch(t, raw, m.Patch)))
	})
}

// fuzzCases are the golden inputs and fixtures, in name order.
func fuzzCases(f *testing.F) []*appsv1.Deployment {
	byName := injectiontest.GoldenCases(&testing.T{})
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	cases := make([]*appsv1.Deployment, len(names))
	for i, n := range names {
		cases[i] = byName[n]
	}
	if len(cases) == 0 {
		f.Fatal("no cases")
	}
	return cases
}

func assertIdempotent(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	twice, _, err := Mutate(d, nil, testSettings())
	if err != nil {
		t.Fatalf("re-injection denied: %v", err)
	}
	injectiontest.AssertEqual(t, "injecting twice", d, twice)
}

// expectation is what the user's edits must leave: for each edited item,
// the value it has while injected and after un-injection.
type expectation struct {
	container                 string
	limitsMemory, requestsCPU *resource.Quantity // defaults: the user's, always
	fsGroup                   *int64             // default: the user's, always
	workingDir                *string            // enforced unless inside the clone
	insideClone               bool
	password                  *corev1.EnvVar // enforced
	userEnv                   []string       // kept
	rollingUpdate             bool           // enforced
	volumes, initContainers   []string       // kept
	replicas                  *int32         // kept
}

// applyEdits makes the user's edits that edits encodes, two bytes each:
// which edit, and a parameter.
func applyEdits(d *appsv1.Deployment, edits []byte) expectation {
	e := expectation{container: decodedContainer(d)}
	ps := &d.Spec.Template.Spec
	c := &ps.Containers[slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == e.container })]
	for i := 0; i+1 < len(edits); i += 2 {
		p := int(edits[i+1])
		switch edits[i] % 12 {
		case 0:
			// Never the default limit (1Gi): a user's value equal to it
			// cannot be told from the injection's and goes with it.
			q := resource.MustParse(fmt.Sprintf("%dGi", p%8+2))
			setResource(&c.Resources.Limits, corev1.ResourceMemory, q)
			e.limitsMemory = &q
		case 1:
			q := resource.MustParse(fmt.Sprintf("%dm", p%50+1))
			setResource(&c.Resources.Requests, corev1.ResourceCPU, q)
			e.requestsCPU = &q
		case 2:
			if ps.SecurityContext == nil {
				ps.SecurityContext = &corev1.PodSecurityContext{}
			}
			ps.SecurityContext.FSGroup = ptr.To(int64(7000 + p)) // never a uid or gid the fixtures use
			e.fsGroup = ps.SecurityContext.FSGroup
		case 3:
			c.WorkingDir = fmt.Sprintf("/srv/%d", p)
			e.workingDir, e.insideClone = ptr.To(c.WorkingDir), false
		case 4:
			c.WorkingDir = fmt.Sprintf("%s/sub%d", recordClone(d), p)
			e.workingDir, e.insideClone = ptr.To(c.WorkingDir), true
		case 5:
			pw := corev1.EnvVar{Name: contract.EnvPassword, Value: fmt.Sprintf("plain-%d", p)}
			c.Env = slices.DeleteFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == contract.EnvPassword })
			c.Env = append(c.Env, pw)
			e.password = &pw
		case 6, 7:
			name := fmt.Sprintf("USER_%d_%d", i, p)
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: "x"})
			e.userEnv = append(e.userEnv, name)
		case 8:
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
			e.rollingUpdate = true
		case 9:
			name := fmt.Sprintf("vol-%d-%d", i, p)
			ps.Volumes = append(ps.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			e.volumes = append(e.volumes, name)
		case 10:
			name := fmt.Sprintf("init-%d-%d", i, p)
			ps.InitContainers = append(ps.InitContainers, corev1.Container{Name: name, Image: "busybox:1"})
			e.initContainers = append(e.initContainers, name)
		case 11:
			d.Spec.Replicas = ptr.To(int32(p % 2))
			e.replicas = d.Spec.Replicas
		}
	}
	return e
}

func setResource(rl *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
	if *rl == nil {
		*rl = corev1.ResourceList{}
	}
	(*rl)[name] = q
}

func decodedContainer(d *appsv1.Deployment) string {
	rec, _ := parseRecord(d.Annotations[contract.AnnotationInjected], &d.Spec.Template.Spec)
	return rec.Container
}

func recordClone(d *appsv1.Deployment) string {
	rec, _ := parseRecord(d.Annotations[contract.AnnotationInjected], &d.Spec.Template.Spec)
	return rec.Clone
}

// check asserts the expectation on d, injected or un-injected.
func (e expectation) check(t *testing.T, when string, d *appsv1.Deployment, injected bool) {
	t.Helper()
	ps := &d.Spec.Template.Spec
	c := ps.Containers[slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == e.container })]
	fail := func(format string, args ...any) { t.Helper(); t.Fatalf(when+": "+format, args...) }
	if q := e.limitsMemory; q != nil && c.Resources.Limits.Memory().Cmp(*q) != 0 {
		fail("limits.memory %s, want the user's %s", c.Resources.Limits.Memory(), q)
	}
	if q := e.requestsCPU; q != nil && c.Resources.Requests.Cpu().Cmp(*q) != 0 {
		fail("requests.cpu %s, want the user's %s", c.Resources.Requests.Cpu(), q)
	}
	if g := e.fsGroup; g != nil && (ps.SecurityContext == nil || ps.SecurityContext.FSGroup == nil || *ps.SecurityContext.FSGroup != *g) {
		fail("fsGroup is not the user's %d", *g)
	}
	if w := e.workingDir; w != nil {
		want := *w
		if injected && !e.insideClone {
			want = recordClone(d)
		}
		if c.WorkingDir != want {
			fail("workingDir %q, want %q", c.WorkingDir, want)
		}
	}
	if pw := e.password; pw != nil {
		got := c.Env[slices.IndexFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == contract.EnvPassword })]
		if injected == equality.Semantic.DeepEqual(got, *pw) {
			fail("password env %v (the user's is %v)", got, *pw)
		}
	}
	for _, n := range e.userEnv {
		if !slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == n }) {
			fail("env %s lost", n)
		}
	}
	if rolling := d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType; e.rollingUpdate && rolling == injected {
		fail("strategy %q", d.Spec.Strategy.Type)
	}
	for _, n := range e.volumes {
		if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == n }) {
			fail("volume %s lost", n)
		}
	}
	for _, n := range e.initContainers {
		if !slices.ContainsFunc(ps.InitContainers, func(c corev1.Container) bool { return c.Name == n }) {
			fail("init container %s lost", n)
		}
	}
	if r := e.replicas; r != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas != *r) {
		fail("replicas %v, want %d", d.Spec.Replicas, *r)
	}
}
