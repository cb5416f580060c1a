package injection

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// hasCAItems reports whether any of the CA's volume, seed env or OpenCode
// env is in d.
func hasCAItems(d *appsv1.Deployment) bool {
	ps := d.Spec.Template.Spec
	if slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == contract.CAVolumeName }) {
		return true
	}
	for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
		if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return isWritten(e, caEnv()) || isWritten(e, caSeedEnv())
		}) {
			return true
		}
	}
	return false
}

// The ca-bundle annotation is the user's part of the Deployment: adding or
// removing it is the user's change, which rolls once and applies; an
// injector upgrade alone adds the CA to no workspace and keeps the one a
// workspace has, record and all.
func TestCABundleUnderThePin(t *testing.T) {
	withCA := injectiontest.ReadDeployment(t, "testdata/ca-bundle.yaml")
	plain := withCA.DeepCopy()
	delete(plain.Annotations, contract.AnnotationCABundle)
	plainOnce, _ := mutateOrFail(t, plain, nil, oldRelease())
	caOnce, _ := mutateOrFail(t, withCA, nil, oldRelease())

	t.Run("upgrade alone", func(t *testing.T) {
		assertKept(t, plainOnce, map[string]review{"without the annotation": {plain, plainOnce}})
		assertKept(t, caOnce, map[string]review{
			"server-side apply":  {withCA, caOnce},
			"client-side update": {caOnce, caOnce},
		})
		if hasCAItems(plainOnce) {
			t.Error("CA items without the annotation")
		}
		if got := decodedRecord(t, caOnce).CABundle; got != "internal-ca" {
			t.Errorf("record caBundle %q, want internal-ca", got)
		}
	})

	t.Run("added", func(t *testing.T) {
		out, warnings := mutateOrFail(t, withCA, plainOnce, newRelease())
		assertTakesNewRelease(t, out, withCA)
		fresh, _ := mutateOrFail(t, withCA, nil, newRelease())
		injectiontest.AssertEqual(t, "annotation added", fresh, out)
		if count(warnings, contract.EnvNodeExtraCACerts) != 1 {
			t.Errorf("want one warning that the user's %s is replaced: %q", contract.EnvNodeExtraCACerts, warnings)
		}
		// Rolled once: the next apply keeps it.
		assertKept(t, out, map[string]review{"re-applied": {withCA, out}})
	})

	t.Run("removed", func(t *testing.T) {
		out, _ := mutateOrFail(t, plain, caOnce, newRelease())
		assertTakesNewRelease(t, out, plain)
		fresh, _ := mutateOrFail(t, plain, nil, newRelease())
		injectiontest.AssertEqual(t, "annotation removed", fresh, out)
		if hasCAItems(out) || decodedRecord(t, out).CABundle != "" {
			t.Error("CA items or record left after the annotation went")
		}
		if e := app(out).Env[0]; e.Name != contract.EnvNodeExtraCACerts || e.Value != "/etc/ssl/mine.pem" {
			t.Errorf("the user's own %s is not back first: %v", contract.EnvNodeExtraCACerts, e)
		}
	})

	t.Run("another ConfigMap", func(t *testing.T) {
		other := withCA.DeepCopy()
		other.Annotations[contract.AnnotationCABundle] = "other-ca"
		out, _ := mutateOrFail(t, other, caOnce, newRelease())
		assertTakesNewRelease(t, out, other)
		if got := decodedRecord(t, out).CABundle; got != "other-ca" {
			t.Errorf("record caBundle %q, want other-ca", got)
		}
	})
}
