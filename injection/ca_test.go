package injection

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

func TestCABundleNameIsValidated(t *testing.T) {
	d := injectiontest.ReadDeployment(t, "testdata/ca-bundle.yaml")
	d.Annotations[contract.AnnotationCABundle] = "Internal_CA"
	_, _, err := Mutate(d, nil, testSettings())
	var ae *contract.AnnotationError
	if !errors.As(err, &ae) || ae.Key != contract.AnnotationCABundle || !strings.Contains(err.Error(), "ConfigMap") || !strings.Contains(err.Error(), contract.CABundleKey) {
		t.Fatalf("want a denial naming %s, a ConfigMap and key %s: %v", contract.AnnotationCABundle, contract.CABundleKey, err)
	}
}

// Without the annotation, the CA's env names are the user's: kept through
// injection and un-injection, never recorded.
func TestUsersCAEnvWithoutAnnotationIsKept(t *testing.T) {
	d := injectiontest.ReadDeployment(t, "testdata/ca-bundle.yaml")
	delete(d.Annotations, contract.AnnotationCABundle)
	app(d).Env = append(app(d).Env, corev1.EnvVar{Name: contract.EnvGitSSLCAInfo, Value: "/etc/ssl/git.pem"})
	users := slices.Clone(app(d).Env)
	out, warnings := mustInject(t, d)
	if count(warnings, contract.EnvNodeExtraCACerts) != 0 || len(decodedRecord(t, out).Env) != 0 {
		t.Errorf("the user's CA env was taken over: %q", warnings)
	}
	for _, e := range users {
		if !slices.ContainsFunc(app(out).Env, func(o corev1.EnvVar) bool { return equality.Semantic.DeepEqual(o, e) }) {
			t.Errorf("env %s lost", e.Name)
		}
	}
	if slices.ContainsFunc(out.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == contract.CAVolumeName }) {
		t.Error("CA volume added without the annotation")
	}
	if got := app(uninject(t, out)).Env; !equality.Semantic.DeepEqual(got, users) {
		t.Errorf("un-injection changed the user's env: %v", got)
	}
}

// Removing the annotation is the user's change: the next update takes out
// exactly what the CA added and gives back the env it replaced.
func TestRemovingCABundleRemovesWhatItAdded(t *testing.T) {
	d := injectiontest.ReadDeployment(t, "testdata/ca-bundle.yaml")
	withCA, _ := mustInject(t, d)
	delete(withCA.Annotations, contract.AnnotationCABundle)
	out, _ := mustInject(t, withCA)

	plain := d.DeepCopy()
	delete(plain.Annotations, contract.AnnotationCABundle)
	want, _ := mustInject(t, plain)
	if !equality.Semantic.DeepEqual(out, want) {
		t.Errorf("removing the annotation left CA items:\n got %v\nwant %v", out.Spec.Template.Spec, want.Spec.Template.Spec)
	}
}

// A record that names another ConfigMap than the CA volume reads, or none
// while the volume is there, is not trusted; un-injection still removes the
// CA's volume and env by name and value.
func TestRecordMustMatchTheCAVolume(t *testing.T) {
	for name, edit := range map[string][2]string{
		"other ConfigMap": {`"caBundle":"internal-ca"`, `"caBundle":"other"`},
		"none":            {`,"caBundle":"internal-ca"`, ``},
	} {
		t.Run(name, func(t *testing.T) {
			out := uninject(t, contradictedRecord(t, "testdata/ca-bundle.yaml", edit))
			if hasOurItems(out) || slices.ContainsFunc(app(out).Env, func(e corev1.EnvVar) bool { return isWritten(e, caEnv()) }) {
				t.Errorf("un-injection left CA items: %v", app(out).Env)
			}
		})
	}
}

// Without a CA bundle the CA env names are the user's: their own
// NODE_EXTRA_CA_CERTS and GIT_SSL_CAINFO (values the injection never writes)
// survive an un-injection whose record cannot be trusted, where what is
// ours goes by name.
func TestUsersOwnCAEnvSurvivesUntrustedUninjection(t *testing.T) {
	users := []corev1.EnvVar{
		{Name: contract.EnvNodeExtraCACerts, Value: "/etc/my-ca/ca.crt"},
		{Name: contract.EnvGitSSLCAInfo, Value: "/etc/my-ca/pool.pem"},
	}
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	app(in).Env = append(app(in).Env, users...)
	injected, _ := mustInject(t, in)
	delete(injected.Annotations, contract.AnnotationInjected)
	stored := injected.DeepCopy()
	delete(injected.Labels, contract.LabelInject)
	out, _, err := Mutate(injected, stored, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if IsInjected(out) {
		t.Fatal("still injected")
	}
	for _, want := range users {
		if !slices.Contains(app(out).Env, want) {
			t.Errorf("the user's own %s=%s was removed by the un-injection", want.Name, want.Value)
		}
	}
}
