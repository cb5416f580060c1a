package injection

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// TestRecordGuards guards each rule by which a record must agree with the
// object it sits on before un-injection trusts it: one edit each, of a
// record that agrees (which must pass, so no rule refuses everything).
func TestRecordGuards(t *testing.T) {
	injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	for _, c := range []struct {
		name string
		edit func(*record, *corev1.PodSpec)
		want string // substring of the refusal; "" means trusted
	}{
		{"a record that agrees is trusted", func(*record, *corev1.PodSpec) {}, ""},
		{"env rule: a negative index", func(r *record, _ *corev1.PodSpec) {
			r.Env = append(r.Env, replacedEnv{Index: -1, EnvVar: corev1.EnvVar{Name: contract.EnvHome, Value: "/root"}})
		}, "does not fit"},
		{"env rule: an index past the container's env", func(r *record, ps *corev1.PodSpec) {
			r.Env = append(r.Env, replacedEnv{Index: len(ps.Containers[0].Env) + len(r.Env) + 2, EnvVar: corev1.EnvVar{Name: contract.EnvHome, Value: "/root"}})
		}, "does not fit"},
		{"env rule: an index not after the one before (as the injection records them)", func(r *record, _ *corev1.PodSpec) {
			r.Env = append(r.Env, replacedEnv{Index: 1, EnvVar: corev1.EnvVar{Name: contract.EnvHome, Value: "/root"}}, replacedEnv{Index: 1, EnvVar: corev1.EnvVar{Name: contract.EnvXDGData, Value: "/x"}})
		}, "is not after the one before it"},
		{"env rule: a name the contract does not own", func(r *record, _ *corev1.PodSpec) {
			r.Env = append(r.Env, replacedEnv{Index: 0, EnvVar: corev1.EnvVar{Name: "PATH", Value: "/evil"}})
		}, "does not fit"},
		{"the container lacks the claim mount", func(r *record, ps *corev1.PodSpec) {
			c := &ps.Containers[slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == r.Container })]
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, isDataMount)
		}, "does not mount"},
		{"clone prefix: a clone outside the workspace root, even where the seed says so", func(r *record, ps *corev1.PodSpec) {
			r.Clone = "/etc/evil"
			seed := &ps.InitContainers[slices.IndexFunc(ps.InitContainers, isOurSeed)]
			for i := range seed.Env {
				if seed.Env[i].Name == contract.EnvSeedWorkspace {
					seed.Env[i].Value = r.Clone
				}
			}
		}, "is not the seed's workspace"},
		{"a clone other than the seed's", func(r *record, _ *corev1.PodSpec) { r.Clone = contract.WorkspaceRoot + "/github.com/x/y" }, "is not the seed's workspace"},
		{"hosts other than the seed's", func(r *record, _ *corev1.PodSpec) { r.Hosts = []string{"evil.example"} }, "are not the seed's"},
		{"a Secret other than the auth volume's", func(r *record, _ *corev1.PodSpec) { r.Secret = "other" }, "is not the one volume"},
		{"no seed container", func(_ *record, ps *corev1.PodSpec) {
			ps.InitContainers = slices.DeleteFunc(ps.InitContainers, isOurSeed)
		}, "no " + contract.SeedContainerName},
		{"several filled fields that are not resources: the first in order is named, on every review", func(r *record, _ *corev1.PodSpec) {
			r.Filled = map[string]resource.Quantity{}
			for _, f := range strings.Split("spec.h spec.g spec.f spec.e spec.d spec.c spec.b spec.a", " ") {
				r.Filled[f] = resource.Quantity{}
			}
		}, `filled field "spec.a"`},
		{"a container that does not exist", func(r *record, _ *corev1.PodSpec) { r.Container = "ghost" }, "is not in the pod template"},
		{"a filled field that is not a resource", func(r *record, _ *corev1.PodSpec) { r.Filled = map[string]resource.Quantity{"spec.x": {}} }, "filled field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := injected.DeepCopy()
			ps := &d.Spec.Template.Spec
			r, err := parseRecord(d.Annotations[contract.AnnotationInjected], ps)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(&r, ps)
			err = r.agreesWith(ps)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}

// The seed's pull policy is the API server's default for its image, so an
// injected Deployment does not differ from its stored form.
func TestSeedPullPolicyIsTheAPIServersDefault(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"ghcr.io/a/b@sha256:" + strings.Repeat("0", 64): corev1.PullIfNotPresent,
		"ghcr.io/a/b:v1.2.3":                            corev1.PullIfNotPresent,
		"ghcr.io/a/b:latest":                            corev1.PullAlways,
		"ghcr.io/a/b":                                   corev1.PullAlways,
		"registry:5000/a/b":                             corev1.PullAlways, // the port is not a tag
		"registry:5000/a/b:v1":                          corev1.PullIfNotPresent,
	} {
		if got := pullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
	s := testSettings()
	s.SeedImage = "ghcr.io/a/b:latest"
	out, _ := mustInjectWith(t, s)
	if got := out.Spec.Template.Spec.InitContainers[slices.IndexFunc(out.Spec.Template.Spec.InitContainers, isOurSeed)].ImagePullPolicy; got != corev1.PullAlways {
		t.Errorf("the injected seed of a :latest image pulls %s", got)
	}
}

func mustInjectWith(t *testing.T, s Settings) (*appsv1.Deployment, []string) {
	t.Helper()
	out, warnings, err := Mutate(injectiontest.ReadDeployment(t, injectiontest.FluxFixture), nil, s)
	if err != nil {
		t.Fatal(err)
	}
	return out, warnings
}

// envEqual tells the injection's own entries from the user's: an entry that
// differs only in Optional is the user's (an optional password lets the
// container start without it).
func TestEnvEqualComparesOptional(t *testing.T) {
	ref := func(optional *bool) corev1.EnvVar {
		return corev1.EnvVar{Name: contract.EnvPassword, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: contract.SecretKeyPassword, Optional: optional}}}
	}
	if !envEqual(ref(nil), ref(nil)) || !envEqual(ref(ptr.To(true)), ref(ptr.To(true))) {
		t.Error("equal entries differ")
	}
	for _, pair := range [][2]corev1.EnvVar{{ref(nil), ref(ptr.To(true))}, {ref(ptr.To(false)), ref(ptr.To(true))}, {ref(nil), ref(ptr.To(false))}} {
		if envEqual(pair[0], pair[1]) || envEqual(pair[1], pair[0]) {
			t.Errorf("entries that differ in Optional (%v, %v) are equal", pair[0].ValueFrom.SecretKeyRef.Optional, pair[1].ValueFrom.SecretKeyRef.Optional)
		}
	}
	other := ref(nil)
	other.ValueFrom.SecretKeyRef.Key = "other"
	if envEqual(ref(nil), other) {
		t.Error("entries of different keys are equal")
	}
}
