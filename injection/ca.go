package injection

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
)

// caVolume is key ca.crt of the ConfigMap the ca-bundle annotation names,
// mounted into the seed only. It is not optional: a missing ConfigMap or key
// keeps the pod from starting, with the kubelet's event naming it, instead of
// a clone that fails on an untrusted certificate.
func caVolume(configMap string) corev1.Volume {
	return corev1.Volume{Name: contract.CAVolumeName, VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: configMap},
			Items:                []corev1.KeyToPath{{Key: contract.CABundleKey, Path: contract.CABundleKey}},
			DefaultMode:          ptr.To[int32](secretVolumeDefaultMode),
		},
	}}
}

func caSeedMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: contract.CAVolumeName, MountPath: contract.CAMountPath, ReadOnly: true}
}

// caSeedEnv tells the seed which CA to add to its roots and where on the
// claim to write the bundles the OpenCode container reads.
func caSeedEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: contract.EnvSeedCASource, Value: contract.CASourcePath},
		{Name: contract.EnvSeedCATarget, Value: contract.CATargetDir},
	}
}

// caEnv points git at the system roots plus the CA (GIT_SSL_CAINFO replaces
// git's roots) and Node at the CA alone (NODE_EXTRA_CA_CERTS adds to its own).
func caEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: contract.EnvGitSSLCAInfo, Value: contract.CATargetDir + "/" + contract.CAPoolFileName},
		{Name: contract.EnvNodeExtraCACerts, Value: contract.CATargetDir + "/" + contract.CAFileName},
	}
}

// envPurpose says why the injection sets an env name it owns.
func envPurpose(name string) string {
	if isCAEnv(name) {
		return "to trust the CA of annotation " + contract.AnnotationCABundle + " besides the system roots"
	}
	return "for persistence and the password"
}

func isCAEnv(name string) bool {
	return name == contract.EnvGitSSLCAInfo || name == contract.EnvNodeExtraCACerts
}

// ownsEnv reports whether the injection described by r owns the env name in
// the OpenCode container: the CA's names only when it added a CA, so a
// user's own NODE_EXTRA_CA_CERTS is theirs otherwise.
func (r record) ownsEnv(name string) bool {
	return ownedEnv(name) || (r.CABundle != "" && isCAEnv(name))
}

// caAgrees checks that the CA volume reads the ConfigMap the record names,
// and is absent when it names none.
func (r record) caAgrees(ps *corev1.PodSpec) error {
	got := ""
	if i := slices.IndexFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == contract.CAVolumeName }); i >= 0 && ps.Volumes[i].ConfigMap != nil {
		got = ps.Volumes[i].ConfigMap.Name
	}
	if got != r.CABundle {
		return fmt.Errorf("CA bundle %q is not the ConfigMap volume %s reads (%q)", r.CABundle, contract.CAVolumeName, got)
	}
	return nil
}
