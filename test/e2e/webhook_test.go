package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
)

var ctx = context.Background()

func get(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	got := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(d), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// assertInjected checks the stored object carries the whole injection and
// that re-injecting it (what every UPDATE does) would change nothing.
func assertInjected(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if len(ps.InitContainers) == 0 || ps.InitContainers[0].Name != contract.SeedContainerName || ps.InitContainers[0].Image != settings.SeedImage {
		t.Errorf("opencode-seed is not the first init container: %+v", ps.InitContainers)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %s, want Recreate", d.Spec.Strategy.Type)
	}
	if _, ok := d.Annotations[contract.AnnotationInjected]; !ok {
		t.Error("no status annotation")
	}
	app := ps.Containers[0]
	if !strings.HasPrefix(app.WorkingDir, contract.WorkspaceRoot+"/") {
		t.Errorf("workingDir %q", app.WorkingDir)
	}
	if !slices.ContainsFunc(app.Env, func(e corev1.EnvVar) bool {
		return e.Name == contract.EnvPassword && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Optional == nil
	}) {
		t.Error("no required OPENCODE_SERVER_PASSWORD from the Secret")
	}
	again, _, err := injection.Mutate(d, nil, settings)
	if err != nil {
		t.Fatalf("re-injecting the stored object: %v", err)
	}
	if !equality.Semantic.DeepEqual(again, d) {
		t.Error("re-injecting the stored object (API defaults included) would change it")
	}
}

func TestFixturesAreInjected(t *testing.T) {
	ns := namespace(t, nil)
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			d := fixture(t, name, ns)
			if err := env.Client.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
			got := get(t, d)
			assertInjected(t, got)
			seed := got.Spec.Template.Spec.InitContainers[0]
			wantUID := map[string]int64{"flux": 1000, "ha": 1000}[name]
			if seed.SecurityContext.RunAsUser == nil || *seed.SecurityContext.RunAsUser != wantUID {
				t.Errorf("seed runs as %v, want uid %d", seed.SecurityContext.RunAsUser, wantUID)
			}
		})
	}
}

func TestUnlabeledDeploymentIsUntouched(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	delete(d.Labels, contract.LabelInject)
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	got := get(t, d)
	if injection.IsInjected(got) || len(got.Spec.Template.Spec.Containers[0].Env) != 2 { // TZ and the fixture's own password
		t.Errorf("an unlabeled Deployment was changed: %+v", got.Spec.Template.Spec)
	}
}

// The webhook's rules send only Deployments; this test also registers the
// same webhook for StatefulSets, so that a labeled StatefulSet reaches the
// handler's own kind check, and shows from the webhook's request count that
// it did.
func TestLabeledStatefulSetIsUntouched(t *testing.T) {
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "opencode-injector"}, &cfg); err != nil {
		t.Fatal(err)
	}
	wide := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector-statefulsets"}, Webhooks: cfg.Webhooks}
	for i := range wide.Webhooks {
		wide.Webhooks[i].Rules[0].Resources = []string{"statefulsets"}
	}
	if err := env.Client.Create(ctx, wide); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, wide) })

	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	sts := &appsv1.StatefulSet{
		ObjectMeta: d.ObjectMeta,
		Spec:       appsv1.StatefulSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	before := webhookRequests(t)
	// The API server picks up a new webhook configuration within a moment.
	waitFor(t, func() bool {
		probe := sts.DeepCopy()
		probe.Name = ""
		probe.GenerateName = "probe-"
		if err := env.Client.Create(ctx, probe, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		return webhookRequests(t) > before
	}, "the handler to see a StatefulSet")
	if err := env.Client.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	got := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(sts), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Template.Spec.InitContainers) != 0 || got.Annotations[contract.AnnotationInjected] != "" {
		t.Error("a StatefulSet was injected")
	}
}

func TestInvalidAnnotationIsDenied(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	d.Annotations[contract.AnnotationRepo] = "https://ghp_leaked@github.com/angryninja/k8s-cluster"
	err := env.Client.Create(ctx, d)
	if err == nil {
		t.Fatal("created")
	}
	msg := err.Error()
	for _, want := range []string{"denied the request", "annotation " + contract.AnnotationRepo, "credentials", "GITHUB_TOKEN"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "ghp_leaked") {
		t.Errorf("message leaks the token: %s", msg)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(d), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a denied Deployment exists: %v", err)
	}
}

func TestUpdateOfInjectedChangesNothing(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	stored := get(t, d)
	// An update of the stored object as it is, and one that only touches metadata.
	if err := env.Client.Update(ctx, stored.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	touched := get(t, d)
	touched.Labels["example.com/touched"] = "yes"
	if err := env.Client.Update(ctx, touched); err != nil {
		t.Fatal(err)
	}
	after := get(t, d)
	if after.Generation != stored.Generation {
		t.Errorf("generation moved from %d to %d", stored.Generation, after.Generation)
	}
	if !equality.Semantic.DeepEqual(after.Spec, stored.Spec) {
		t.Error("spec changed")
	}
}

func TestServerSideDryRunCreateReturnsInjected(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	if err := env.Client.Create(ctx, d, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	assertInjected(t, d)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(d), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a dry run persisted the Deployment: %v", err)
	}
}

func TestRemovingLabelUninjects(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "ha", ns)
	d.Spec.Strategy = appsv1.DeploymentStrategy{} // the API server defaults it to RollingUpdate
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	c, w := warningClient(t)
	stored := get(t, d)
	delete(stored.Labels, contract.LabelInject)
	if err := c.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	got := get(t, d)
	if injection.IsInjected(got) || len(got.Spec.Template.Spec.Volumes) != 1 || got.Spec.Template.Spec.Containers[0].WorkingDir != "" {
		t.Errorf("not un-injected: %+v", got.Spec.Template.Spec)
	}
	if got.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || got.Spec.Strategy.RollingUpdate == nil {
		t.Errorf("strategy not restored: %+v", got.Spec.Strategy)
	}
	if res := got.Spec.Template.Spec.Containers[0].Resources; len(res.Limits) != 0 || len(res.Requests) != 1 {
		t.Errorf("resources not restored: %+v", res)
	}
	if !slices.ContainsFunc(w.All(), func(s string) bool { return strings.Contains(s, "injection was removed") }) {
		t.Errorf("no un-injection warning: %q", w.All())
	}
}

func TestOverridesComeBackAsWarnings(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "HOME", Value: "/root"})
	d.Annotations[contract.Prefix+"brnach"] = "main"
	c, w := warningClient(t)
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"replaced by Recreate", "env HOME of container app replaced", "did you mean " + contract.AnnotationBranch} {
		if !slices.ContainsFunc(w.All(), func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no warning with %q in %q", want, w.All())
		}
	}
}

// TestPodSecurityWarnsAboutRootSeed: the API server's own Pod Security
// admission, in warn mode, reports that the ha workspace's seed runs as root.
func TestPodSecurityWarnsAboutRootSeed(t *testing.T) {
	ns := namespace(t, map[string]string{"pod-security.kubernetes.io/warn": "restricted"})
	d := fixture(t, "ha", ns)
	// As the official image runs: root, no security context (the examples
	// and fixtures set uid 1000; TestFixturesMeetRestricted checks them).
	d.Spec.Template.Spec.SecurityContext = nil
	d.Spec.Template.Spec.Containers[0].SecurityContext = nil
	c, w := warningClient(t)
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(w.All(), func(s string) bool {
		return strings.Contains(s, "restricted") && strings.Contains(s, contract.SeedContainerName)
	}) {
		t.Errorf("no Pod Security warning naming %s: %q", contract.SeedContainerName, w.All())
	}
}

func TestReplicasAboveOneDenied(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	d.Spec.Replicas = ptr.To[int32](2)
	err := env.Client.Create(ctx, d)
	if err == nil || !strings.Contains(err.Error(), "spec.replicas is 2") {
		t.Errorf("got %v", err)
	}
}

// TestLabelAddedByUpdateInjects: a Deployment that existed before it was
// labeled (or before the injector ran) is injected by its next update.
func TestLabelAddedByUpdateInjects(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	delete(d.Labels, contract.LabelInject)
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	stored := get(t, d)
	stored.Labels[contract.LabelInject] = contract.LabelInjectEnabled
	if err := env.Client.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	assertInjected(t, get(t, d))
}

// TestBranchChangeWarns: the existing clone keeps its branch, and the user
// is told so.
func TestBranchChangeWarns(t *testing.T) {
	ns := namespace(t, nil)
	d := fixture(t, "flux", ns)
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	stored := get(t, d)
	stored.Annotations[contract.AnnotationBranch] = "develop"
	c, w := warningClient(t)
	if err := c.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(w.All(), func(s string) bool { return strings.Contains(s, "the existing clone keeps its branch") }) {
		t.Errorf("no branch warning in %q", w.All())
	}
	if env := get(t, d).Spec.Template.Spec.InitContainers[0].Env; !slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
		return e.Name == contract.EnvSeedBranch && e.Value == "develop"
	}) {
		t.Error("the seed does not get the new branch for a fresh claim")
	}
}
