package injection

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// withRecordedDuplicates is the flux fixture whose app container holds two
// password entries of the user's (first, second) and two HOME entries,
// beside extra GIT_CONFIG_KEY_n entries of the user's and as many of other
// names: with 20 extra, the record and the container hold more than
// envLookup scans (it looks entries up by name), with none it scans.
// Either way entries of one name are all looked up.
func withRecordedDuplicates(t *testing.T, extra int) *appsv1.Deployment {
	t.Helper()
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	c := app(in)
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == contract.EnvPassword })
	c.Env = append(c.Env,
		corev1.EnvVar{Name: contract.EnvPassword, Value: "first"},
		corev1.EnvVar{Name: contract.EnvHome, Value: "/home/first"},
		corev1.EnvVar{Name: "KEPT", Value: "between"},
		corev1.EnvVar{Name: contract.EnvPassword, Value: "second"},
		corev1.EnvVar{Name: contract.EnvHome, Value: "/home/second"})
	for i := range extra {
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("GIT_CONFIG_KEY_%d", 100+i), Value: fmt.Sprintf("user.v%d", i)}, corev1.EnvVar{Name: fmt.Sprintf("E%d", i), Value: "v"})
	}
	return in
}

// TestRecordedEntriesOfOneNameAreAllLookedUp: a server-side apply that
// merges the user's first password value into the injected entry is the
// injection's entry (the record keeps that value), so un-injection gives
// back both of the user's password entries; and a changed image re-injects
// without warning again about entries the user was told about. Looking up
// only one entry a name (or none) in a long record kept the merged value
// as the user's and dropped their second password entry, and warned again.
func TestRecordedEntriesOfOneNameAreAllLookedUp(t *testing.T) {
	for _, extra := range []int{0, 20} {
		t.Run(fmt.Sprint(extra), func(t *testing.T) {
			in := withRecordedDuplicates(t, extra)
			stored, _ := mustInject(t, in)

			merged := stored.DeepCopy()
			for i, e := range app(merged).Env {
				if e.Name == contract.EnvPassword {
					app(merged).Env[i].Value = "first"
				}
			}
			delete(merged.Labels, contract.LabelInject)
			out, _, err := Mutate(merged, stored, testSettings())
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(app(out).Env, app(in).Env) {
				t.Errorf("env after un-injection of a merged password entry:\n%v\nwant the user's:\n%v", app(out).Env, app(in).Env)
			}

			bumped := stored.DeepCopy()
			app(bumped).Image += "-new"
			_, warnings, err := Mutate(bumped, stored, testSettings())
			if err != nil {
				t.Fatal(err)
			}
			if n := count(warnings, "env "); n != 0 {
				t.Errorf("%d env warnings again after an image bump: %q", n, warnings)
			}
		})
	}
}
