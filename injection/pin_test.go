package injection

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// Two releases of the injector: their own images by digest, and the defaults
// before and after the sizing measurement.
var (
	oldImage = ImageRepository + "@sha256:" + strings.Repeat("1", 64)
	newImage = ImageRepository + "@sha256:" + strings.Repeat("2", 64)
)

func oldRelease() Settings {
	s := DefaultSettings(oldImage)
	s.DefaultRequests = mustResources("cpu=100m,memory=256Mi")
	s.DefaultLimits = mustResources("cpu=500m,memory=512Mi")
	return s
}

func newRelease() Settings {
	s := DefaultSettings(newImage)
	s.DefaultRequests = mustResources("cpu=100m,memory=512Mi")
	s.DefaultLimits = mustResources("memory=1Gi")
	return s
}

// mutateOrFail mutates in; a review without a stored object is the
// offline inject's, the only one that may keep the request's own record
// (TestCreateKeepsNoOwnRecord covers the webhook's CREATE).
func mutateOrFail(t *testing.T, in, stored *appsv1.Deployment, s Settings) (*appsv1.Deployment, []string) {
	t.Helper()
	s.Offline = stored == nil
	out, warnings, err := Mutate(in, stored, s)
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	return out, warnings
}

func seedImage(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if isOurSeed(c) {
			return c.Image
		}
	}
	t.Fatal("no seed container")
	return ""
}

// assertTakesNewRelease: the user's own change brought the new release's
// seed image and defaults, and a record of the user's part it came from.
func assertTakesNewRelease(t *testing.T, out, user *appsv1.Deployment) {
	t.Helper()
	if got := seedImage(t, out); got != newImage {
		t.Errorf("seed image %s, want the new release's", got)
	}
	limits := app(out).Resources.Limits
	if got := limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("limits.memory %s, want the new default 1Gi", got.String())
	}
	if _, set := limits[corev1.ResourceCPU]; set {
		t.Errorf("limits.cpu %v stays, the new defaults set none", limits)
	}
	if got, want := decodedRecord(t, out).UserDigest, userDigest(user); got != want {
		t.Errorf("record digest %s, want the user's part's %s", got, want)
	}
}

// review is what an admission review carries: the request's object, and the
// stored one on an UPDATE.
type review struct{ request, stored *appsv1.Deployment }

// assertKept: under the new release, every review gives want back, silently.
func assertKept(t *testing.T, want *appsv1.Deployment, reviews map[string]review) {
	t.Helper()
	for shape, u := range reviews {
		out, warnings := mutateOrFail(t, u.request, u.stored, newRelease())
		injectiontest.AssertEqual(t, shape, want, out)
		if len(warnings) > 0 {
			t.Errorf("%s: warnings %q", shape, warnings)
		}
	}
}

// assertUsersChangeTakesNewRelease: the user's own change to user (another
// OpenCode image) against stored brings the new release, with the change.
func assertUsersChangeTakesNewRelease(t *testing.T, user, stored *appsv1.Deployment) {
	t.Helper()
	changed := user.DeepCopy()
	app(changed).Image = "ghcr.io/anomalyco/opencode:9.9.9"
	out, _ := mutateOrFail(t, changed, stored, newRelease())
	assertTakesNewRelease(t, out, changed)
	if app(out).Image != "ghcr.io/anomalyco/opencode:9.9.9" {
		t.Errorf("the user's change is lost: %s", app(out).Image)
	}
}

// withStorage is d asking for a 5Gi claim.
func withStorage(d *appsv1.Deployment) *appsv1.Deployment {
	d = d.DeepCopy()
	d.Annotations[contract.AnnotationStorage] = "5Gi"
	return d
}

// withRecordOf is d carrying src's record and nothing else of its injection,
// as server-side apply leaves it when another field manager changed the
// record (kubectl rollout restart after an upgrade).
func withRecordOf(d, src *appsv1.Deployment) *appsv1.Deployment {
	d = d.DeepCopy()
	d.Annotations[contract.AnnotationInjected] = src.Annotations[contract.AnnotationInjected]
	return d
}

// An injector upgrade (new seed image, new defaults) restarts no workspace:
// whatever shape the update arrives in, the injection stays as it was until
// the user's own part changes; then the new release applies.
func TestUpgradeKeepsTheInjection(t *testing.T) {
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			user := injectiontest.ReadDeployment(t, strings.Replace(injectiontest.FluxFixture, "flux", name, 1))
			once, _ := mutateOrFail(t, user, nil, oldRelease())
			assertKept(t, once, map[string]review{
				"offline inject of the injected manifest":                {once, nil},
				"server-side apply (no injected fields)":                 {user, once},
				"client-side update (the whole object back)":             {once, once},
				"server-side apply, the record owned by another manager": {withRecordOf(user, once), once},
			})
			assertUsersChangeTakesNewRelease(t, user, once)

			// A storage annotation asks the provisioner for a claim; it does
			// not shape the pod template, and rolls nothing.
			assertKept(t, withStorage(once), map[string]review{"storage asked": {withStorage(user), once}})

			// kubectl rollout restart changes the pod template's annotations,
			// the user's part: the restart brings the new release.
			restarted := user.DeepCopy()
			restarted.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-12-05T10:00:00Z"}
			out, _ := mutateOrFail(t, restarted, once, newRelease())
			assertTakesNewRelease(t, out, restarted)
		})
	}
}

// A workspace created with metadata.generateName was injected before the
// API server named it: its pin holds the digest of a nameless user part,
// and the named object's updates still keep the injection.
func TestGeneratedNameKeepsThePin(t *testing.T) {
	user := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	user.Name, user.GenerateName = "", "opencode-"
	user.Annotations[contract.AnnotationClaim] = "opencode-flux"
	created, _, err := Mutate(user, nil, oldRelease()) // the webhook's CREATE
	if err != nil {
		t.Fatal(err)
	}
	once := created.DeepCopy()
	once.Name = "opencode-x7k2p" // as the API server names it after admission
	named := user.DeepCopy()
	named.Name = once.Name
	// Kept, with the record's digest from now on the named user part's,
	// so the pin no longer depends on generateName, which a PUT may drop.
	want := once.DeepCopy()
	rec := decodedRecord(t, once)
	rec.UserDigest = userDigest(named)
	want.Annotations[contract.AnnotationInjected] = rec.encode()
	replaced := once.DeepCopy()
	replaced.GenerateName = "" // a PUT of a manifest that names it
	assertKept(t, want, map[string]review{
		"server-side apply (no injected fields)":     {named, once},
		"client-side update (the whole object back)": {once, once},
	})
	assertUsersChangeTakesNewRelease(t, named, once)
	afterPut := want.DeepCopy()
	afterPut.GenerateName = ""
	assertKept(t, afterPut, map[string]review{
		"a PUT without generateName": {replaced, once},
		"an update after the PUT":    {afterPut, afterPut},
	})

	// Another name than the prefix gave is a renamed copy, not this pin.
	renamed := named.DeepCopy()
	renamed.Name = "elsewhere"
	stored := once.DeepCopy()
	stored.Name = "elsewhere"
	out, _ := mutateOrFail(t, renamed, stored, newRelease())
	if got := seedImage(t, out); got != newImage {
		t.Errorf("a name the prefix did not give kept the pin: seed image %s", got)
	}
}

// A Deployment injected before records kept a digest (by the previous
// release's inject command, testdata/before-pin) adopts its live template:
// the release that brings the pin rolls no workspace.
func TestRecordWithoutDigestAdoptsTheLiveTemplate(t *testing.T) {
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			stored := injectiontest.ReadDeployment(t, "testdata/before-pin/"+name+".injected.yaml")
			if strings.Contains(stored.Annotations[contract.AnnotationInjected], "userDigest") {
				t.Fatal("the testdata already holds a digest")
			}
			user := injectiontest.ReadDeployment(t, strings.Replace(injectiontest.FluxFixture, "flux", name, 1))
			assertKept(t, stored, map[string]review{"server-side apply": {user, stored}, "client-side update": {stored, stored}})
			assertUsersChangeTakesNewRelease(t, user, stored)
		})
	}
}

// The pinned seed image can be edited by anyone who edits the Deployment,
// and it runs with the token: it is kept only when it is the injector's own
// repository by digest, or offline (nothing is pulled, the output is
// reviewed in Git) by one of its release tags, as a released inject writes.
func TestPinnedSeedImageMustBeTheInjectorsByDigest(t *testing.T) {
	user := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	type keptWhen struct{ stored, offline bool }
	for image, kept := range map[string]keptWhen{
		oldImage:                                {true, true},
		newImage:                                {true, true},
		ImageRepository + ":v0.1.0":             {false, true},
		ImageRepository + ":v0.2.0-rc.1":        {false, true},
		ImageRepository + ":latest":             {false, false},
		ImageRepository + ":v0.1.0-evil":        {false, false},
		"evil.example/opencode-injector:v0.1.0": {false, false},
		ImageRepository + "-evil@sha256:" + strings.Repeat("3", 64):                {false, false},
		"evil.example/opencode-injector@sha256:" + strings.Repeat("3", 64):         {false, false},
		"evil.example/x@sha256:" + strings.Repeat("3", 64) + "#" + ImageRepository: {false, false},
	} {
		t.Run(image, func(t *testing.T) {
			once, _ := mutateOrFail(t, user, nil, oldRelease())
			ps := &once.Spec.Template.Spec
			for i := range ps.InitContainers {
				if isOurSeed(ps.InitContainers[i]) {
					ps.InitContainers[i].Image = image
				}
			}
			for shape, in := range map[string]struct {
				request, stored *appsv1.Deployment
				kept            bool
			}{
				"stored": {user, once, kept.stored}, "offline": {once, nil, kept.offline},
			} {
				out, warnings := mutateOrFail(t, in.request, in.stored, newRelease())
				want := newImage
				if in.kept {
					want = image
				}
				if got := seedImage(t, out); got != want {
					t.Errorf("%s: seed image %s, want %s", shape, got, want)
				}
				if n := count(warnings, "is not "+ImageRepository+" pinned by digest"); n != map[bool]int{true: 0, false: 1}[in.kept] {
					t.Errorf("%s: warnings %q", shape, warnings)
				}
				if got := app(out).Resources.Limits[corev1.ResourceCPU]; got.Cmp(resource.MustParse("500m")) != 0 {
					t.Errorf("%s: limits.cpu %s: the rest of the injection is no longer kept", shape, got.String())
				}
			}
		})
	}
}

// Removing a host from --allowed-git-hosts is how an admin stops the token
// going there: it applies at once. Adding one waits like any setting.
func TestNarrowedGitHostsApplyAtOnce(t *testing.T) {
	user := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	before := oldRelease()
	before.AllowedGitHosts = []string{"github.com", "git.example.com"}
	once, _ := mutateOrFail(t, user, nil, before)

	narrowed := newRelease()
	out, _ := mutateOrFail(t, user, once, narrowed)
	assertTakesNewRelease(t, out, user)
	if got := decodedRecord(t, out).Hosts; len(got) != 1 || got[0] != "github.com" {
		t.Errorf("hosts %q, want only github.com", got)
	}

	widened := newRelease()
	widened.AllowedGitHosts = []string{"github.com", "git.example.com", "codeberg.org"}
	out, _ = mutateOrFail(t, user, once, widened)
	injectiontest.AssertEqual(t, "widened hosts", once, out)
}

// A renamed copy of an injected Deployment is another workspace: its
// default claim follows its own name, not the original's kept injection.
func TestRenamedCopyIsInjectedAfresh(t *testing.T) {
	once, _, err := Mutate(injectiontest.ReadDeployment(t, injectiontest.FluxFixture), nil, DefaultSettings(oldImage))
	if err != nil {
		t.Fatal(err)
	}
	copied := once.DeepCopy()
	copied.Name = "second-workspace"
	// Offline, the copy's own record with its digest is the pin source: only
	// the name in the digest tells the copy from the original.
	offline := DefaultSettings(newImage)
	offline.Offline = true
	out, _, err := Mutate(copied, nil, offline)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.Spec.Template.Spec.Volumes {
		if v.Name == contract.DataVolumeName && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "second-workspace") {
			t.Errorf("the renamed copy mounts %+v, want its own claim second-workspace", v.VolumeSource)
		}
	}
}

// The webhook's CREATE keeps no injection its request carries: the record
// is the requester's word. A forged, self-consistent record on a template
// without the password env gets a fresh injection, with the password.
func TestCreateKeepsNoOwnRecord(t *testing.T) {
	once, _, err := Mutate(injectiontest.ReadDeployment(t, injectiontest.FluxFixture), nil, DefaultSettings(oldImage))
	if err != nil {
		t.Fatal(err)
	}
	forged := once.DeepCopy()
	app := &forged.Spec.Template.Spec.Containers[0]
	app.Env = slices.DeleteFunc(app.Env, func(e corev1.EnvVar) bool { return e.Name == contract.EnvPassword })
	out, _, err := Mutate(forged, nil, newRelease())
	if err != nil {
		t.Fatal(err)
	}
	if got := seedImage(t, out); got != newImage {
		t.Errorf("the request's own injection was kept: seed image %s, want %s", got, newImage)
	}
	if !slices.ContainsFunc(out.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == contract.EnvPassword }) {
		t.Error("a CREATE without the password env was admitted without it")
	}
}

// A v1 record is trusted without a seed init container beside it (v1 did
// not check one): a stored object whose seed was deleted is no pin, the
// injection is made afresh, seed included.
func TestV1RecordWithoutSeedIsInjectedAfresh(t *testing.T) {
	stored := injectiontest.ReadDeployment(t, "testdata/already-injected.yaml")
	ps := &stored.Spec.Template.Spec
	ps.InitContainers = slices.DeleteFunc(ps.InitContainers, isOurSeed)
	if _, trusted, w := readRecord(stored); !trusted {
		t.Fatalf("the v1 fixture's record is not trusted: %s", w)
	}
	out, _ := mutateOrFail(t, stored, stored, newRelease())
	if got := seedImage(t, out); got != newImage {
		t.Errorf("seed image %q, want the injection made afresh with %s", got, newImage)
	}
}

// A record written by a later release (a field this one does not know) is
// read after an injector rollback: its known fields agree with the object,
// so the workspace does not roll and nothing of the user's is lost.
func TestRecordFromALaterReleaseIsRead(t *testing.T) {
	user := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	stored, _ := mutateOrFail(t, user, nil, newRelease())
	raw := stored.Annotations[contract.AnnotationInjected]
	stored.Annotations[contract.AnnotationInjected] = strings.TrimSuffix(raw, "}") + `,"future":{"x":true}}`
	if problem := RecordProblem(stored); problem != "" {
		t.Errorf("the later release's record is not trusted: %s", problem)
	}
	out, warnings := mutateOrFail(t, stored, stored, oldRelease())
	if !equality.Semantic.DeepEqual(out, stored) {
		t.Errorf("the rollback changed the workspace (seed %s, warnings %q)", seedImage(t, out), warnings)
	}
}
