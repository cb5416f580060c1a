package injection

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// withUsersOwnEnv is d with the user's own values for env names the
// contract owns, none of them a value the injection writes.
func withUsersOwnEnv(d *appsv1.Deployment) *appsv1.Deployment {
	d = d.DeepCopy()
	c := app(d)
	c.Env = append(c.Env,
		corev1.EnvVar{Name: contract.EnvHome, Value: "/home/opencode"},
		corev1.EnvVar{Name: contract.EnvXDGConfig, Value: "/config"},
		secretEnv(contract.EnvToken, "my-token", "token", false))
	return d
}

// withoutLabel is d with the opt-in label removed.
func withoutLabel(d *appsv1.Deployment) *appsv1.Deployment {
	d = d.DeepCopy()
	delete(d.Labels, contract.LabelInject)
	return d
}

// A user who copied the record into their manifest and sets their own
// HOME, XDG_* and GITHUB_TOKEN: server-side apply sends that manifest, the
// record without the rest of the injection. Stripped with the stored
// record, its user part is the stored object's: an injector upgrade keeps
// the injection, and removing the label gives the user's manifest back,
// their own env included.
func TestCopiedRecordWithTheUsersOwnEnv(t *testing.T) {
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			user := withUsersOwnEnv(injectiontest.ReadDeployment(t, strings.Replace(injectiontest.FluxFixture, "flux", name, 1)))
			once, _ := mutateOrFail(t, user, nil, oldRelease())
			applied := withRecordOf(user, once)
			assertKept(t, once, map[string]review{"server-side apply of a manifest holding the record": {applied, once}})

			out, warnings := mutateOrFail(t, withoutLabel(applied), once, newRelease())
			want := withoutLabel(user)
			injectiontest.AssertEqual(t, "un-injection", want, out)
			if n := count(warnings, contract.AnnotationInjected); n != 0 {
				t.Errorf("the stored record is trusted, yet a warning says it is not: %q", warnings)
			}

			// One edit deletes the label, the record and the seed: what is
			// left of the injection is stripped with the stored record.
			edited := withoutLabel(once)
			delete(edited.Annotations, contract.AnnotationInjected)
			edited.Spec.Template.Spec.InitContainers = nil
			out, warnings = mutateOrFail(t, edited, once, newRelease())
			injectiontest.AssertEqual(t, "un-injection of the leftovers", want, out)
			if n := count(warnings, "without its record"); n != 0 {
				t.Errorf("the stored record restored the user's values, yet a warning says they cannot be: %q", warnings)
			}

			// The stored record cannot be trusted either (deleted by hand):
			// stripped by name, every value the injection never writes is
			// the user's and stays.
			untrusted := once.DeepCopy()
			delete(untrusted.Annotations, contract.AnnotationInjected)
			out, _ = mutateOrFail(t, withoutLabel(applied), untrusted, newRelease())
			injectiontest.AssertEqual(t, "un-injection without a trusted record", want, out)
		})
	}
}

// The stored record says what was written into the container it names: a
// request whose container has another name since (and whose own record was
// edited) is stripped by name, and none of our env stays behind.
func TestStoredRecordStripsOnlyTheContainerItNames(t *testing.T) {
	once, _ := mutateOrFail(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture), nil, oldRelease())
	renamed := withoutLabel(once)
	renamed.Annotations[contract.AnnotationInjected] += "x"
	app(renamed).Name = "opencode"
	out, _ := mutateOrFail(t, renamed, once, newRelease())
	for _, e := range out.Spec.Template.Spec.Containers[0].Env {
		if mayBeWritten(e) {
			t.Errorf("un-injection left %s", e.Name)
		}
	}
}
