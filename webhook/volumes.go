package webhook

import (
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// secretVolumeDefaultMode is what the API server would default; setting it
// keeps the patch for an already injected object empty.
const secretVolumeDefaultMode = 0o644

// volumes are the claim and the optional auth.json item of the Secret.
func volumes(ws Workspace) []corev1.Volume {
	return []corev1.Volume{
		{Name: DataVolumeName, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ws.Claim},
		}},
		{Name: AuthVolumeName, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  ws.Secret,
				Items:       []corev1.KeyToPath{{Key: SecretKeyAuth, Path: AuthFileName}},
				DefaultMode: ptr.To[int32](secretVolumeDefaultMode),
				Optional:    ptr.To(true),
			},
		}},
	}
}

func dataMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: DataVolumeName, MountPath: DataMountPath}
}

func isOurVolume(name string) bool { return name == DataVolumeName || name == AuthVolumeName }

// stripVolumes removes our volumes and every mount of them.
func stripVolumes(ps *corev1.PodSpec) {
	ps.Volumes = slices.DeleteFunc(ps.Volumes, func(v corev1.Volume) bool { return isOurVolume(v.Name) })
	if len(ps.Volumes) == 0 {
		ps.Volumes = nil
	}
	for _, cs := range [][]corev1.Container{ps.InitContainers, ps.Containers} {
		for i := range cs {
			cs[i].VolumeMounts = slices.DeleteFunc(cs[i].VolumeMounts, func(m corev1.VolumeMount) bool { return isOurVolume(m.Name) })
			if len(cs[i].VolumeMounts) == 0 {
				cs[i].VolumeMounts = nil
			}
		}
	}
}

// checkCollisions denies a user volume named like ours or another mount at
// /data in the OpenCode container: replacing either would lose user data.
func checkCollisions(ps *corev1.PodSpec, ci int) error {
	for _, v := range ps.Volumes {
		if isOurVolume(v.Name) {
			return fmt.Errorf("volume %q is reserved by opencode-injector; rename your volume (app-template: persistence.<name>)", v.Name)
		}
	}
	c := ps.Containers[ci]
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == DataMountPath {
			return fmt.Errorf("container %q mounts volume %q at %s, where opencode-injector mounts the workspace claim; mount it elsewhere (app-template: persistence.%s.globalMounts[].path)",
				c.Name, m.Name, DataMountPath, m.Name)
		}
	}
	return nil
}
