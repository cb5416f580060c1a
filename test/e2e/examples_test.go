package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// exampleValues reads the values of every workspace example's HelmRelease
// (namespace opencode) after Flux's postBuild substitution, by the fixture
// they must equal (opencode-flux: flux).
func exampleValues(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, k := range fluxKustomizations(t) {
		if k.Metadata.Namespace != "opencode" {
			continue
		}
		file := filepath.Join(sourceDir(k), "helmrelease.yaml")
		b, err := os.ReadFile(file)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		text, missing := testenv.Substitute(string(b), k.Spec.PostBuild.Substitute)
		for _, v := range missing {
			t.Errorf("%s: ${%s} is not substituted", file, v)
		}
		var hr struct {
			Spec struct {
				Values map[string]any `json:"values"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(text), &hr); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out[strings.TrimPrefix(k.Metadata.Name, "opencode-")] = hr.Spec.Values
	}
	if len(out) < 2 {
		t.Fatalf("found %d workspace examples", len(out))
	}
	return out
}

// TestExampleValuesAreTheFixtures: what a user deploys from deploy/flux is
// exactly what the e2e suites inject: each example HelmRelease's values,
// substituted, equal the values the fixture was rendered from.
func TestExampleValuesAreTheFixtures(t *testing.T) {
	for name, values := range exampleValues(t) {
		var fixture map[string]any
		if err := yaml.Unmarshal(mustRead(t, filepath.Join(root, "test", "fixtures", "app-template", name+".values.yaml")), &fixture); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fixture, values); diff != "" {
			t.Errorf("example opencode-%s differs from fixture %s.values.yaml (-fixture +example):\n%s", name, name, diff)
		}
	}
}

func passwordEnv(c corev1.Container) *corev1.EnvVar {
	for i, e := range c.Env {
		if e.Name == contract.EnvPassword {
			return &c.Env[i]
		}
	}
	return nil
}

// assertPassword: OpenCode's password comes from the workspace's own
// Secret, the one its secret annotation names.
func assertPassword(t *testing.T, what string, d *appsv1.Deployment) {
	t.Helper()
	secret := d.Annotations[contract.AnnotationSecret]
	if secret == "" {
		t.Fatalf("%s: the example has no %s annotation: every workspace has a Secret of its own", what, contract.AnnotationSecret)
	}
	want := corev1.EnvVar{Name: contract.EnvPassword, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: contract.SecretKeyPassword}}}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "app" {
			continue
		}
		if got := passwordEnv(c); got == nil || !equality.Semantic.DeepEqual(*got, want) {
			t.Errorf("%s: OpenCode runs without %s from the Secret: %+v", what, contract.EnvPassword, got)
		}
		return
	}
	t.Errorf("%s: no container app", what)
}

// TestPasswordSurvivesWithoutTheWebhook: every path that takes the
// webhook's injection away keeps OpenCode's password: the chart's own
// Deployment without the label (the webhook never sees it: label removed
// before install, webhook gone, drift correction), and un-injection by
// removing the label.
func TestPasswordSurvivesWithoutTheWebhook(t *testing.T) {
	ns := namespace(t, nil)
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			plain := chartDeployment(t, name, ns)
			labels := plain.GetLabels()
			delete(labels, contract.LabelInject)
			plain.SetLabels(labels)
			plain.SetName(plain.GetName() + "-plain")
			d := helmApply(t, plain)
			if _, ok := d.Annotations[contract.AnnotationInjected]; ok || len(d.Spec.Template.Spec.InitContainers) > 0 {
				t.Fatal("an unlabeled Deployment was injected")
			}
			assertPassword(t, "the chart's Deployment without the label", d)

			u := chartDeployment(t, name, ns)
			injected := helmApply(t, u)
			assertInjected(t, injected)
			assertPassword(t, "injected", injected)
			removed := get(t, injected)
			delete(removed.Labels, contract.LabelInject)
			if err := env.Client.Update(ctx, removed); err != nil {
				t.Fatal(err)
			}
			removed = get(t, removed)
			if len(removed.Spec.Template.Spec.InitContainers) > 0 {
				t.Fatal("not un-injected")
			}
			assertPassword(t, "un-injected by removing the label", removed)
		})
	}
}

// TestFixturesMeetRestricted: the examples' workspaces, injected, pass Pod
// Security restricted (the API server's own admission, in warn mode, sees
// the Deployment's pod template) and get no override warning from the
// webhook: their password env equals what it injects.
func TestFixturesMeetRestricted(t *testing.T) {
	ns := namespace(t, map[string]string{"pod-security.kubernetes.io/warn": "restricted"})
	for _, name := range []string{"flux", "ha"} {
		t.Run(name, func(t *testing.T) {
			d := fixture(t, name, ns)
			c, w := warningClient(t)
			if err := c.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
			got := get(t, d)
			assertInjected(t, got)
			if warnings := w.All(); len(warnings) > 0 {
				t.Errorf("warnings: %q", warnings)
			}
			if !slices.ContainsFunc(got.Spec.Template.Spec.InitContainers, func(c corev1.Container) bool {
				return c.Name == contract.SeedContainerName && c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil && *c.SecurityContext.RunAsUser == 1000
			}) {
				t.Error("the seed does not run as the workspace's uid 1000")
			}
			if a := got.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
				t.Error("the workspace mounts a service-account token")
			}
		})
	}
}

// TestFixturesAreRenderedFromTheirValues: each rendered fixture is what the
// real app-template chart renders from the values beside it (the examples'
// values). It needs ../shared (the chart and its render script), which only
// the development machines have; elsewhere it is skipped.
func TestFixturesAreRenderedFromTheirValues(t *testing.T) {
	script := filepath.Join(root, "..", "shared", "render-app-template.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("no %s: %v", script, err)
	}
	for _, name := range []string{"flux", "ha"} {
		dir := filepath.Join(root, "test", "fixtures", "app-template")
		out, err := exec.Command(script, "opencode-"+name, "opencode", filepath.Join(dir, name+".values.yaml")).Output()
		if err != nil {
			t.Fatalf("render %s: %v", name, err)
		}
		if string(out) != string(mustRead(t, filepath.Join(dir, name+".rendered.yaml"))) {
			t.Errorf("%s.rendered.yaml is not what the chart renders from %s.values.yaml: re-render it with %s", name, name, script)
		}
	}
}
