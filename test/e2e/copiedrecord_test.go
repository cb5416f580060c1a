package e2e

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/angryninja/opencode-injector/contract"
)

// usersOwnEnv are the user's own values for env names the contract owns.
var usersOwnEnv = []corev1.EnvVar{
	{Name: contract.EnvHome, Value: "/home/opencode"},
	{Name: contract.EnvXDGConfig, Value: "/config"},
	{Name: contract.EnvToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "my-token"}, Key: "token"}}},
}

// TestCopiedRecordWithTheUsersOwnEnv: the chart's values set the user's
// own HOME, XDG_CONFIG_HOME and GITHUB_TOKEN, and the user replaces the
// Deployment with their manifest holding the record copied from the live
// object. After an injector upgrade, the replace moves no generation and
// helm-controller's drift check sees none; removing the label gives the
// user's env back.
func TestCopiedRecordWithTheUsersOwnEnv(t *testing.T) {
	before, after := twoReleases()
	replaceInjector(t, before)

	u := chartDeployment(t, "flux", namespace(t, nil))
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	app := containers[0].(map[string]any)
	userEnv, _ := app["env"].([]any)
	for _, e := range usersOwnEnv {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&e)
		if err != nil {
			t.Fatal(err)
		}
		userEnv = append(userEnv, m)
	}
	app["env"] = userEnv
	if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	first := helmApply(t, u)
	if seedImageOf(first) != before.SeedImage {
		t.Fatal("not injected by the first injector")
	}

	// `kubectl replace` of the user's manifest holding the copied record:
	// the request carries the record and none of the injection.
	replace := func(u *unstructured.Unstructured) *appsv1.Deployment {
		t.Helper()
		u = u.DeepCopy()
		u.SetResourceVersion(get(t, first).ResourceVersion)
		if err := env.Client.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
		return get(t, first)
	}
	copied := u.DeepCopy()
	annotations := copied.GetAnnotations()
	annotations[contract.AnnotationInjected] = first.Annotations[contract.AnnotationInjected]
	copied.SetAnnotations(annotations)
	replaceInjector(t, after)
	for i := 0; i < 3; i++ {
		if d := replace(copied); d.Generation != first.Generation {
			t.Fatalf("replace %d with the copied record: generation %d -> %d, seed image %s", i+1, first.Generation, d.Generation, seedImageOf(d))
		}
	}
	assertNoDrift(t, u, get(t, first))

	plain := copied.DeepCopy()
	labels := plain.GetLabels()
	delete(labels, contract.LabelInject)
	plain.SetLabels(labels)
	removed := replace(plain)
	if seedImageOf(removed) != "" {
		t.Fatal("still injected")
	}
	got := removed.Spec.Template.Spec.Containers[0].Env
	for _, e := range usersOwnEnv {
		if !slices.ContainsFunc(got, func(g corev1.EnvVar) bool { return equality.Semantic.DeepEqual(g, e) }) {
			t.Errorf("the user's %s is gone after un-injection: %v", e.Name, got)
		}
	}
	for _, ours := range []string{contract.EnvXDGData, contract.EnvGitConfigCount} {
		if slices.ContainsFunc(got, func(g corev1.EnvVar) bool { return g.Name == ours }) {
			t.Errorf("%s is left after un-injection", ours)
		}
	}
}
