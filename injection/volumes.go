package injection

import (
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
)

// secretVolumeDefaultMode is what the API server would default; setting it
// keeps the patch for an already injected object empty.
const secretVolumeDefaultMode = 0o644

// volumes are the claim and the optional auth.json item of the Secret.
func volumes(ws Workspace) []corev1.Volume {
	vs := []corev1.Volume{
		{Name: contract.DataVolumeName, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ws.Claim},
		}},
		{Name: contract.AuthVolumeName, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  ws.Secret,
				Items:       []corev1.KeyToPath{{Key: contract.SecretKeyAuth, Path: contract.AuthFileName}},
				DefaultMode: ptr.To[int32](secretVolumeDefaultMode),
				Optional:    ptr.To(true),
			},
		}},
	}
	if ws.CABundle != "" {
		vs = append(vs, caVolume(ws.CABundle))
	}
	return vs
}

func dataMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: contract.DataVolumeName, MountPath: contract.DataMountPath}
}

// isDataMount tells the claim mount the injection adds.
func isDataMount(m corev1.VolumeMount) bool { return equality.Semantic.DeepEqual(m, dataMount()) }

func isOurVolume(name string) bool {
	return name == contract.DataVolumeName || name == contract.AuthVolumeName || name == contract.CAVolumeName
}

// stripVolumes removes our volumes.
func stripVolumes(ps *corev1.PodSpec) {
	ps.Volumes = slices.DeleteFunc(ps.Volumes, func(v corev1.Volume) bool { return isOurVolume(v.Name) })
	if len(ps.Volumes) == 0 {
		ps.Volumes = nil
	}
}

// stripForeignMounts removes every mount of our volumes left in any
// container: on un-injection the volumes are gone, and a mount of a missing
// volume would make the pod template invalid.
func stripForeignMounts(ps *corev1.PodSpec) {
	for _, cs := range [][]corev1.Container{ps.InitContainers, ps.Containers} {
		for i := range cs {
			cs[i].VolumeMounts = slices.DeleteFunc(cs[i].VolumeMounts, func(m corev1.VolumeMount) bool { return isOurVolume(m.Name) })
			if len(cs[i].VolumeMounts) == 0 {
				cs[i].VolumeMounts = nil
			}
		}
	}
}

// checkCollisions denies, on the user's object, anything that uses our names:
// a volume named like ours, an init container named like the seed, a mount
// of our volumes that the injection did not add (a sidecar's, which would
// otherwise be kept on CREATE and lost on UPDATE), or another mount at
// /data in the OpenCode container. Replacing any of them would lose the
// user's intent without a word.
func checkCollisions(ps *corev1.PodSpec, ci int) error {
	for _, v := range ps.Volumes {
		if isOurVolume(v.Name) {
			return fmt.Errorf("volume %q is reserved by opencode-injector; rename your volume (app-template: persistence.<name>)", v.Name)
		}
	}
	for _, c := range ps.InitContainers {
		if c.Name == contract.SeedContainerName {
			return fmt.Errorf("init container %q is reserved by opencode-injector, which adds its own; rename yours (app-template: initContainers.<name>)", c.Name)
		}
	}
	for _, cs := range [][]corev1.Container{ps.InitContainers, ps.Containers} {
		for _, c := range cs {
			for _, m := range c.VolumeMounts {
				if isOurVolume(m.Name) {
					return fmt.Errorf("container %q mounts volume %q, which opencode-injector owns and mounts only into the OpenCode container; "+
						"to share the workspace claim with this container, declare your own volume for the claim (app-template: persistence.<name>.existingClaim with advancedMounts) and mount that", c.Name, m.Name)
				}
			}
		}
	}
	c := ps.Containers[ci]
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == contract.DataMountPath {
			return fmt.Errorf("container %q mounts volume %q at %s, where opencode-injector mounts the workspace claim; mount it elsewhere (app-template: persistence.%s.globalMounts[].path)",
				c.Name, m.Name, contract.DataMountPath, m.Name)
		}
	}
	return nil
}
