package injection

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	"github.com/angryninja/opencode-injector/manifest"
)

// These tests follow a workspace through its later life: the user edits
// the injected object (what a Helm upgrade or kubectl edit sends) and the
// webhook sees it again, or the label goes.

func mustInject(t *testing.T, d *appsv1.Deployment) (*appsv1.Deployment, []string) {
	t.Helper()
	out, warnings, err := Mutate(d, nil, testSettings())
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	return out, warnings
}

// uninject removes the label and lets the webhook see the object again.
func uninject(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	d = d.DeepCopy()
	delete(d.Labels, contract.LabelInject)
	out, _ := mustInject(t, d)
	if IsInjected(out) {
		t.Fatal("still injected after the label was removed")
	}
	return out
}

func app(d *appsv1.Deployment) *corev1.Container {
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == contract.DefaultContainerName {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return &d.Spec.Template.Spec.Containers[0]
}

func count(warnings []string, substr string) int {
	n := 0
	for _, w := range warnings {
		if strings.Contains(w, substr) {
			n++
		}
	}
	return n
}

func decodedRecord(t *testing.T, d *appsv1.Deployment) record {
	t.Helper()
	var rec record
	if err := json.Unmarshal([]byte(d.Annotations[contract.AnnotationInjected]), &rec); err != nil {
		t.Fatalf("record: %v", err)
	}
	return rec
}

// The reproduction: the user raises limits.memory after the first
// injection; the webhook keeps it, says so once, and un-injection keeps it.
func TestUserRaisedLimitIsKept(t *testing.T) {
	once, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	app(once).Resources.Limits[corev1.ResourceMemory] = resource.MustParse("4Gi")

	twice, warnings := mustInject(t, once)
	if got := app(twice).Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("4Gi")) != 0 {
		t.Fatalf("limits.memory is %s, want the user's 4Gi", got.String())
	}
	if n := count(warnings, "limits.memory"); n != 1 {
		t.Errorf("want one warning about limits.memory, got %d: %q", n, warnings)
	}
	if _, claimed := decodedRecord(t, twice).Filled["limits.memory"]; claimed {
		t.Error("the record still claims limits.memory")
	}
	thrice, warnings := mustInject(t, twice)
	if n := count(warnings, "limits.memory"); n != 0 {
		t.Errorf("the warning repeats: %q", warnings)
	}
	if !equality.Semantic.DeepEqual(twice, thrice) {
		t.Error("a third injection changed the object")
	}
	restored := uninject(t, thrice)
	if got := app(restored).Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("4Gi")) != 0 {
		t.Errorf("un-injection lost the user's limit: %v", app(restored).Resources)
	}
	if _, filled := app(restored).Resources.Limits[corev1.ResourceCPU]; filled {
		t.Errorf("un-injection left the filled limits.cpu: %v", app(restored).Resources)
	}
}

func TestUserFSGroupIsKept(t *testing.T) {
	once, warnings := mustInject(t, injectiontest.ReadDeployment(t, "testdata/non-root-no-uid.yaml"))
	if count(warnings, "fsGroup set to") != 1 {
		t.Fatalf("no fsGroup added: %q", warnings)
	}
	once.Spec.Template.Spec.SecurityContext.FSGroup = ptr.To[int64](2000)
	twice, warnings := mustInject(t, once)
	if got := twice.Spec.Template.Spec.SecurityContext.FSGroup; got == nil || *got != 2000 {
		t.Fatalf("fsGroup is %v, want the user's 2000", got)
	}
	if count(warnings, "fsGroup is now 2000") != 1 || count(warnings, "fsGroup set to") != 0 {
		t.Errorf("want one warning that fsGroup is the user's: %q", warnings)
	}
	if decodedRecord(t, twice).FSGroup != nil {
		t.Error("the record still claims fsGroup")
	}
	if got := uninject(t, twice).Spec.Template.Spec.SecurityContext.FSGroup; got == nil || *got != 2000 {
		t.Errorf("un-injection lost the user's fsGroup: %v", got)
	}
}

// Enforced items are enforced again, and the user's latest value is what
// un-injection restores.
func TestUserEditsToEnforcedItems(t *testing.T) {
	once, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	clone := app(once).WorkingDir
	app(once).WorkingDir = "/srv"
	once.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	for i, e := range app(once).Env {
		if e.Name == contract.EnvPassword {
			app(once).Env[i] = corev1.EnvVar{Name: contract.EnvPassword, Value: "plain"}
		}
	}

	twice, warnings := mustInject(t, once)
	if app(twice).WorkingDir != clone || twice.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("not enforced: workingDir %q, strategy %q", app(twice).WorkingDir, twice.Spec.Strategy.Type)
	}
	for _, want := range []string{"workingDir /srv", "spec.strategy RollingUpdate replaced", "env " + contract.EnvPassword} {
		if count(warnings, want) != 1 {
			t.Errorf("want one warning %q: %q", want, warnings)
		}
	}
	restored := uninject(t, twice)
	if app(restored).WorkingDir != "/srv" || restored.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("un-injection restored workingDir %q, strategy %q; want the user's latest", app(restored).WorkingDir, restored.Spec.Strategy.Type)
	}
	var password []corev1.EnvVar
	for _, e := range app(restored).Env {
		if e.Name == contract.EnvPassword {
			password = append(password, e)
		}
	}
	if len(password) != 1 || password[0].Value != "plain" {
		t.Errorf("un-injection restored %v, want the user's latest password entry", password)
	}
}

func TestWorkingDirInsideCloneIsTheUsers(t *testing.T) {
	for _, dir := range []string{"/data/workspace/github.com/angryninja/k8s-cluster", "/data/workspace/github.com/angryninja/k8s-cluster/apps/web"} {
		in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
		app(in).WorkingDir = dir
		once, warnings := mustInject(t, in)
		if app(once).WorkingDir != dir || count(warnings, "workingDir") != 0 {
			t.Errorf("%s: workingDir %q, warnings %q", dir, app(once).WorkingDir, warnings)
		}
		if got := app(uninject(t, once)).WorkingDir; got != dir {
			t.Errorf("%s: un-injection left workingDir %q", dir, got)
		}
	}
}

// The examples set the password env themselves, so that no path runs
// OpenCode unprotected: the webhook stays silent and un-injection keeps it.
func TestPasswordEnvEqualToOursIsSilentAndKept(t *testing.T) {
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	in.Spec.Template.Spec.Containers[0].Env = append(app(in).Env, secretEnv(contract.EnvPassword, DefaultSecretName, contract.SecretKeyPassword, false))
	once, warnings := mustInject(t, in)
	if count(warnings, "env ") != 0 {
		t.Errorf("warned about an env equal to what is injected: %q", warnings)
	}
	twice, _ := mustInject(t, once)
	restored := uninject(t, twice)
	want := in.DeepCopy()
	delete(want.Labels, contract.LabelInject)
	if !equality.Semantic.DeepEqual(app(want).Env, app(restored).Env) {
		t.Errorf("un-injection changed the env:\nwant %v\ngot  %v", app(want).Env, app(restored).Env)
	}
}

// An override is warned about when it is new, never again while it stays
// as it was, also when the request carries no record (server-side apply
// drops the fields its manager no longer sends).
func TestOverrideWarnsOnlyWhenItChanges(t *testing.T) {
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	in.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	once, warnings := mustInject(t, in)
	if count(warnings, "spec.strategy") != 1 {
		t.Fatalf("no strategy warning on the first injection: %q", warnings)
	}
	if _, warnings = mustInject(t, once); count(warnings, "spec.strategy") != 0 {
		t.Errorf("strategy warning repeated on re-injection: %q", warnings)
	}
	_, warnings, err := Mutate(in, once, testSettings())
	if err != nil || count(warnings, "spec.strategy") != 0 {
		t.Errorf("strategy warning repeated on an update that sends the chart's object again: %q, %v", warnings, err)
	}
}

func TestRepoChangeClonesBeside(t *testing.T) {
	once, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	changed := once.DeepCopy()
	changed.Annotations[contract.AnnotationRepo] = "bob/k8s-cluster"
	out, warnings, err := Mutate(changed, once, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if got := app(out).WorkingDir; got != "/data/workspace/github.com/bob/k8s-cluster" {
		t.Errorf("workingDir %q", got)
	}
	if count(warnings, "stays on the claim at /data/workspace/github.com/angryninja/k8s-cluster") != 1 || count(warnings, "beside it at /data/workspace/github.com/bob/k8s-cluster") != 1 {
		t.Errorf("want the repo change explained with both paths: %q", warnings)
	}
}

func TestReservedNamesAreDenied(t *testing.T) {
	for name, edit := range map[string]func(d *appsv1.Deployment){
		"user init container named opencode-seed": func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.InitContainers = append(d.Spec.Template.Spec.InitContainers, corev1.Container{Name: contract.SeedContainerName, Image: "busybox"})
		},
		"sidecar mounting opencode-data": func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: contract.DataVolumeName, MountPath: "/workspace"}}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
			edit(in)
			if _, _, err := Mutate(in, nil, testSettings()); err == nil || !strings.Contains(err.Error(), "reserved") && !strings.Contains(err.Error(), "owns") {
				t.Errorf("CREATE: want a denial, got %v", err)
			}
			injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
			edit(injected)
			if _, _, err := Mutate(injected, nil, testSettings()); err == nil {
				t.Error("UPDATE of an injected workspace: want a denial, got none")
			}
		})
	}
}

// A record that contradicts the object is not trusted: the injection is
// stripped by name, with a warning, and none of our env stays behind but
// the password (TestNoUninjectionLeavesOpenCodeWithoutItsPassword).
func TestRecordThatContradictsTheObject(t *testing.T) {
	for name, edit := range map[string]func(d *appsv1.Deployment){
		"names a container that does not exist": func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = `{"version":"v2","container":"ghost","secret":"opencode-secret","clone":"/data/workspace/a/b","hosts":["github.com"]}`
		},
		"a known field of the wrong type": func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationInjected] = strings.Replace(d.Annotations[contract.AnnotationInjected], `"version"`, `"strategy":7,"version"`, 1)
		},
		"deleted": func(d *appsv1.Deployment) { delete(d.Annotations, contract.AnnotationInjected) },
	} {
		t.Run(name, func(t *testing.T) {
			injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
			edit(injected)
			delete(injected.Labels, contract.LabelInject)
			out, warnings, err := Mutate(injected, nil, testSettings())
			if err != nil {
				t.Fatal(err)
			}
			if count(warnings, contract.AnnotationInjected) != 1 {
				t.Errorf("want a warning about the record: %q", warnings)
			}
			if IsInjected(out) {
				t.Error("still injected")
			}
			for _, c := range out.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					if ownedEnv(e.Name) && e.Name != contract.EnvPassword {
						t.Errorf("container %s keeps %s", c.Name, e.Name)
					}
				}
				if strings.HasPrefix(c.WorkingDir, contract.WorkspaceRoot) {
					t.Errorf("container %s keeps workingDir %s", c.Name, c.WorkingDir)
				}
			}
		})
	}
}

// Objects injected under contract v1 (clone at /data/workspace/<name>)
// still un-inject, and re-inject under v2.
func TestV1RecordStillUninjects(t *testing.T) {
	v1 := injectiontest.ReadDeployment(t, "testdata/already-injected.yaml")
	if !strings.Contains(v1.Annotations[contract.AnnotationInjected], `"version":"v1"`) {
		t.Fatal("the testdata is not a v1 object")
	}
	restored := uninject(t, v1)
	want := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	delete(want.Labels, contract.LabelInject)
	app(want).Image = app(v1).Image // the testdata was upgraded to a new tag
	// The v1 testdata predates the fixture's own password env (the examples
	// carry it so that no path runs OpenCode without its password); a v1
	// record does not say what it wrote, so the injected one stays, after
	// the user's env.
	var env, password []corev1.EnvVar
	for _, e := range app(want).Env {
		if e.Name == contract.EnvPassword {
			password = append(password, e)
		} else {
			env = append(env, e)
		}
	}
	app(want).Env = append(env, password...)
	if !equality.Semantic.DeepEqual(app(want), app(restored)) || !equality.Semantic.DeepEqual(want.Spec.Strategy, restored.Spec.Strategy) {
		a, _ := manifest.EncodeYAML(want)
		b, _ := manifest.EncodeYAML(restored)
		t.Errorf("v1 un-injection:\nwant %s\ngot  %s", a, b)
	}
	again, _ := mustInject(t, v1)
	if rec := decodedRecord(t, again); rec.Version != contract.Version || app(again).WorkingDir != "/data/workspace/github.com/angryninja/k8s-cluster" {
		t.Errorf("re-injection of a v1 object: version %s, workingDir %s", rec.Version, app(again).WorkingDir)
	}
}

// contradictedRecord is file injected, its record edited by replacing
// edit[0] with edit[1], checked to be no longer trusted.
func contradictedRecord(t *testing.T, file string, edit [2]string) *appsv1.Deployment {
	t.Helper()
	injected, _ := mustInject(t, injectiontest.ReadDeployment(t, file))
	raw := injected.Annotations[contract.AnnotationInjected]
	if !strings.Contains(raw, edit[0]) {
		t.Fatalf("record %s lacks %s", raw, edit[0])
	}
	injected.Annotations[contract.AnnotationInjected] = strings.Replace(raw, edit[0], edit[1], 1)
	if _, trusted, _ := readRecord(injected); trusted {
		t.Fatalf("a record edited from %s to %s is trusted", edit[0], edit[1])
	}
	return injected
}

// A well-formed record whose Secret, clone or hosts are not those of the
// seed container and auth volume it sits beside is not trusted: trusting it
// would take our own env for the user's and leave the password behind.
func TestRecordMustMatchTheSeedAndVolume(t *testing.T) {
	for name, edit := range map[string][2]string{
		"secret": {`"secret":"opencode-secret"`, `"secret":"other"`},
		"clone":  {`"clone":"/data/workspace/github.com/angryninja/k8s-cluster"`, `"clone":"/data/workspace/x/y"`},
		"hosts":  {`"hosts":["github.com"]`, `"hosts":["example.com"]`},
	} {
		t.Run(name, func(t *testing.T) {
			injected := contradictedRecord(t, injectiontest.FluxFixture, edit)
			delete(injected.Labels, contract.LabelInject)
			out, warnings, err := Mutate(injected, nil, testSettings())
			if err != nil || count(warnings, contract.AnnotationInjected) != 1 {
				t.Fatalf("want a warning about the record: %q, %v", warnings, err)
			}
			for _, e := range app(out).Env {
				if ownedEnv(e.Name) && e.Name != contract.EnvPassword {
					t.Errorf("un-injection left %s", e.Name)
				}
			}
		})
	}
}

// Leftovers of an injection whose record and seed were deleted by hand
// still go when the label is removed.
func TestUninjectionRemovesLeftovers(t *testing.T) {
	injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	delete(injected.Annotations, contract.AnnotationInjected)
	injected.Spec.Template.Spec.InitContainers = nil
	stored := injected.DeepCopy()
	delete(injected.Labels, contract.LabelInject)
	out, warnings, err := Mutate(injected, stored, testSettings())
	if err != nil || count(warnings, "without its record") != 1 {
		t.Fatalf("want a warning about the leftovers: %q, %v", warnings, err)
	}
	if hasOurItems(out) || slices.ContainsFunc(app(out).Env, func(e corev1.EnvVar) bool { return ownedEnv(e.Name) && e.Name != contract.EnvPassword }) {
		a, _ := manifest.EncodeYAML(out)
		t.Errorf("leftovers stay:\n%s", a)
	}
}

// A way out is never blocked and leaves a valid pod template: a mount of
// our volumes in another container goes with the volume.
func TestUninjectionRemovesEveryMountOfOurVolumes(t *testing.T) {
	injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	ps := &injected.Spec.Template.Spec
	ps.Containers = append(ps.Containers, corev1.Container{Name: "sidecar", Image: "busybox:1",
		VolumeMounts: []corev1.VolumeMount{{Name: contract.DataVolumeName, MountPath: "/ws"}}})
	out := uninject(t, injected)
	for _, c := range out.Spec.Template.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if isOurVolume(m.Name) {
				t.Errorf("container %s still mounts %s, a volume that is gone", c.Name, m.Name)
			}
		}
	}
}

func TestUpdateWarnings(t *testing.T) {
	once, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	for key, value := range map[string]string{contract.AnnotationBranch: "release", contract.AnnotationClaim: "other-claim"} {
		changed := once.DeepCopy()
		changed.Annotations[key] = value
		_, warnings, err := Mutate(changed, once, testSettings())
		if err != nil || count(warnings, "annotation "+key+" changed") != 1 {
			t.Errorf("%s: want one warning that it changed: %q, %v", key, warnings, err)
		}
	}
}
