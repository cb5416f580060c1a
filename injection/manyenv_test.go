package injection

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// TestRecordOfManyEnvEntriesGivesThemBack: a container with 300
// GIT_CONFIG_KEY_n entries of the user's (names the injection sets) is
// injected and its record holds all of them (301 with the fixture's
// password entry). The stored object gives them back when the label is
// removed, right away or after an image bump, and a request's record
// edited to drop the password entry does not decide instead of it. (A
// bound on the record's entries, tried and dropped, made the record of an
// older release untrusted: the 300 entries were lost, with a warning
// calling it edited by hand, and the edited request record left OpenCode
// without a password.)
func TestRecordOfManyEnvEntriesGivesThemBack(t *testing.T) {
	const users = 300
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	c := &in.Spec.Template.Spec.Containers[0]
	for i := range users {
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("GIT_CONFIG_KEY_%d", 100+i), Value: fmt.Sprintf("user.v%d", i)})
	}
	stored, _ := mustInject(t, in)
	rec, err := parseRecord(stored.Annotations[contract.AnnotationInjected], &stored.Spec.Template.Spec)
	if err != nil {
		t.Fatal(err)
	}

	usersBack := func(d *appsv1.Deployment) (n, passwords int) {
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if strings.HasPrefix(e.Value, "user.v") {
				n++
			}
			if e.Name == contract.EnvPassword {
				passwords++
			}
		}
		return n, passwords
	}
	unlabel := func(t *testing.T, cur *appsv1.Deployment) {
		req := cur.DeepCopy()
		delete(req.Labels, contract.LabelInject)
		out, warnings, err := Mutate(req, cur, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		if n, passwords := usersBack(out); n != users || passwords != 1 {
			t.Errorf("label removed: %d of the user's %d entries back, %d password entries; warnings %q", n, users, passwords, warnings)
		}
	}
	t.Run("label removed", func(t *testing.T) { unlabel(t, stored) })
	// DESIGN.md: on an UPDATE the trusted stored record decides, so a
	// request whose record was edited to drop the user's password entry
	// (the fixture's own, equal to the one injected) still gets it back.
	t.Run("label removed with a record edited to drop the password", func(t *testing.T) {
		edited := rec
		edited.Env = rec.Env[1:11]
		req := stored.DeepCopy()
		req.Annotations[contract.AnnotationInjected] = edited.encode()
		delete(req.Labels, contract.LabelInject)
		out, _, err := Mutate(req, stored, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		if _, passwords := usersBack(out); passwords != 1 {
			t.Errorf("OpenCode left with %d %s entries", passwords, contract.EnvPassword)
		}
	})
	t.Run("image bumped, then label removed", func(t *testing.T) {
		req := stored.DeepCopy()
		req.Spec.Template.Spec.Containers[0].Image += "-new"
		out, _, err := Mutate(req, stored, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		unlabel(t, out)
	})
}
