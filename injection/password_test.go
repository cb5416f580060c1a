package injection

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

func passwordEnv(c *corev1.Container) []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, e := range c.Env {
		if e.Name == contract.EnvPassword {
			env = append(env, e)
		}
	}
	return env
}

// injectedWithPassword is the flux fixture, its password entry set to
// users, injected.
func injectedWithPassword(t *testing.T, users corev1.EnvVar) *appsv1.Deployment {
	t.Helper()
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	c := app(in)
	for i := range c.Env {
		if c.Env[i].Name == contract.EnvPassword {
			c.Env[i] = users
		}
	}
	if n := len(passwordEnv(c)); n != 1 {
		t.Fatalf("the fixture has %d password entries, want 1", n)
	}
	injected, _ := mustInject(t, in)
	return injected
}

// No un-injection leaves OpenCode without its password: whatever happened
// to the record, the password entry the user had is there afterwards. Only
// a trusted v2 record, which says what the injection wrote and what it
// replaced, gives the user's own entry back in place of ours; every other
// path keeps the entry it finds (the user's, or ours from the Secret).
func TestNoUninjectionLeavesOpenCodeWithoutItsPassword(t *testing.T) {
	v1Record := func(env string) func(d *appsv1.Deployment) {
		return func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = `{"version":"v1","container":"app"` + env + `}`
		}
	}
	paths := map[string]struct {
		edit    func(d *appsv1.Deployment)
		trusted bool // the user's own entry comes back, whatever it was
	}{
		"trusted": {func(*appsv1.Deployment) {}, true},
		"edited":  {func(d *appsv1.Deployment) { d.Annotations[contract.AnnotationInjected] += "x" }, false},
		"a known field of the wrong type": {func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = strings.Replace(d.Annotations[contract.AnnotationInjected], `"version"`, `"strategy":7,"version"`, 1)
		}, false},
		"a later release's field": {func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = strings.Replace(d.Annotations[contract.AnnotationInjected], `"version"`, `"extra":1,"version"`, 1)
		}, true},
		"deleted": {func(d *appsv1.Deployment) { delete(d.Annotations, contract.AnnotationInjected) }, false},
		"record and seed deleted": {func(d *appsv1.Deployment) {
			delete(d.Annotations, contract.AnnotationInjected)
			d.Spec.Template.Spec.InitContainers = nil
		}, false},
		"contradicting: container": {func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = strings.Replace(d.Annotations[contract.AnnotationInjected], `"container":"app"`, `"container":"ghost"`, 1)
		}, false},
		"contradicting: secret": {func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = strings.Replace(d.Annotations[contract.AnnotationInjected], `"secret":"opencode-secret"`, `"secret":"other"`, 1)
		}, false},
		"v1 without the user's entry": {v1Record(""), false},
		"v1 with the user's entry":    {nil, true}, // made below from the user's entry
		"request's record without its env, stored record trusted": {func(d *appsv1.Deployment) {
			rec, trusted, _ := readRecord(d)
			if !trusted {
				t.Fatal("the injected fixture's record is not trusted")
			}
			rec.Env = nil
			d.Annotations[contract.AnnotationInjected] = rec.encode()
		}, true},
	}
	// These edits are the requester's: the stored object keeps the record
	// the webhook wrote, and that record decides what is stripped.
	requestOnly := map[string]bool{"request's record without its env, stored record trusted": true}
	for userName, users := range map[string]corev1.EnvVar{
		"as the examples set it": secretEnv(contract.EnvPassword, DefaultSecretName, contract.SecretKeyPassword, false),
		"from the user's Secret": secretEnv(contract.EnvPassword, "my-password", "pw", false),
		"a plain value":          {Name: contract.EnvPassword, Value: "hunter2"},
	} {
		for path, p := range paths {
			t.Run(userName+"/"+path, func(t *testing.T) {
				injected := injectedWithPassword(t, users)
				edit := p.edit
				if edit == nil {
					raw := injectiontest.MustJSON(t, users)
					edit = v1Record(`,"env":[{"index":0,` + strings.TrimPrefix(string(raw), "{") + `]`)
				}
				stored := injected.DeepCopy()
				edit(injected)
				if !requestOnly[path] {
					stored = injected.DeepCopy()
				}
				delete(injected.Labels, contract.LabelInject)
				out, _, err := Mutate(injected, stored, testSettings())
				if err != nil {
					t.Fatal(err)
				}
				if IsInjected(out) || hasOurItems(out) {
					t.Fatal("still injected")
				}
				got := passwordEnv(app(out))
				if len(got) != 1 {
					t.Fatalf("%d password entries after un-injection, want 1: %v", len(got), got)
				}
				ours := secretEnv(contract.EnvPassword, DefaultSecretName, contract.SecretKeyPassword, false)
				if want := users; !p.trusted && !equality.Semantic.DeepEqual(got[0], want) && !equality.Semantic.DeepEqual(got[0], ours) {
					t.Errorf("password entry %v, want the user's %v or the injected %v", got[0], want, ours)
				}
				if p.trusted && !equality.Semantic.DeepEqual(got[0], users) {
					t.Errorf("password entry %v, want the user's own %v back", got[0], users)
				}
			})
		}
	}
}

// A request that keeps the label but carries a record edited to drop the
// user's password entry changes nothing: the stored record, written by the
// webhook, says what is stripped, so the user's part is unchanged, the pin
// keeps the injection, and a later un-injection gives the user's entry back.
func TestEditedRequestRecordKeepsTheUsersPassword(t *testing.T) {
	users := corev1.EnvVar{Name: contract.EnvPassword, Value: "hunter2"}
	stored := injectedWithPassword(t, users)
	req := stored.DeepCopy()
	rec, trusted, _ := readRecord(req)
	if !trusted {
		t.Fatal("the injected fixture's record is not trusted")
	}
	rec.Env = nil
	req.Annotations[contract.AnnotationInjected] = rec.encode()
	kept, _, err := Mutate(req, stored, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(kept, stored) {
		t.Fatalf("the edited request's record changed the injection:\n%s", injectiontest.MustJSON(t, kept))
	}
	req = kept.DeepCopy()
	delete(req.Labels, contract.LabelInject)
	out, _, err := Mutate(req, kept, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if got := passwordEnv(app(out)); len(got) != 1 || !equality.Semantic.DeepEqual(got[0], users) {
		t.Errorf("password entries after un-injection %v, want the user's own %v", got, users)
	}
}

// Server-side apply merges the user's password entry (a value) into ours (a
// Secret key) field by field: the request holds both, an entry the API
// refuses. Its value is the user's, its valueFrom ours: an identical
// re-apply changes nothing, and un-injection gives back the user's entry
// alone.
func TestMergedPasswordEntryIsTheUsersValue(t *testing.T) {
	users := corev1.EnvVar{Name: contract.EnvPassword, Value: "hunter2"}
	stored := injectedWithPassword(t, users)
	merged := stored.DeepCopy()
	for i, e := range app(merged).Env {
		if e.Name == contract.EnvPassword {
			app(merged).Env[i].Value = users.Value
		}
	}
	out, _, err := Mutate(merged, stored, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(out, stored) {
		t.Errorf("an identical server-side apply changed the workspace: record %s", out.Annotations[contract.AnnotationInjected])
	}
	delete(merged.Labels, contract.LabelInject)
	out, _, err = Mutate(merged, stored, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if got := passwordEnv(app(out)); len(got) != 1 || !equality.Semantic.DeepEqual(got[0], users) {
		t.Errorf("password entries after un-injection %v, want the user's own %v alone", got, users)
	}
}
