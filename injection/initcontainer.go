package injection

import (
	"slices"
	"strings"

	"github.com/angryninja/opencode-injector/contract"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// seedImageUser is the uid of the distroless nonroot user of the injector
// image; it owns the volume when the pod forbids root but names no uid.
const seedImageUser int64 = 65532

// seedSubcommand is the binary's subcommand the init container runs.
const seedSubcommand = "seed"

// isOurSeed tells the seed init container the injection added from a user's
// init container that happens to share its name: ours runs the seed.
func isOurSeed(c corev1.Container) bool {
	return c.Name == contract.SeedContainerName && slices.Equal(c.Command, []string{contract.SeedBinaryPath}) && slices.Equal(c.Args, []string{seedSubcommand})
}

// Fields the API server would default, set here so that an already injected
// object produces an empty patch.
const terminationMessagePath = "/dev/termination-log"

// The seed's resources. Its memory limit is the annotation seed-memory,
// clamped to [minSeedMemory, maxSeedMemory]; the seed reads it back through
// the downward API and budgets its clone by it.
var (
	seedCPURequest    = resource.MustParse("50m")
	seedCPULimit      = resource.MustParse("1")
	seedMemoryRequest = resource.MustParse("64Mi")
	DefaultSeedMemory = resource.MustParse("256Mi")
	minSeedMemory     = resource.MustParse("128Mi")
	maxSeedMemory     = resource.MustParse("16Gi")
)

// seedResources requests little and limits memory to limit: the clone's
// peak memory follows the repository's largest object.
func seedResources(limit resource.Quantity) corev1.ResourceRequirements {
	request := seedMemoryRequest.DeepCopy()
	if request.Cmp(limit) > 0 {
		request = limit.DeepCopy()
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: seedCPURequest.DeepCopy(), corev1.ResourceMemory: request},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: seedCPULimit.DeepCopy(), corev1.ResourceMemory: limit.DeepCopy()},
	}
}

// clampSeedMemory keeps the seed-memory annotation within what a seed can
// use: below the minimum no clone fits, above the maximum is a typo.
func clampSeedMemory(q resource.Quantity) (resource.Quantity, string) {
	bound := q
	switch {
	case q.Cmp(minSeedMemory) < 0:
		bound = minSeedMemory
	case q.Cmp(maxSeedMemory) > 0:
		bound = maxSeedMemory
	default:
		return q, ""
	}
	bound = bound.DeepCopy()
	return bound, "annotation " + contract.AnnotationSeedMemory + " " + q.String() + " clamped to " + bound.String() + seedMemoryRange
}

// seedMemoryRange is written once, at init: Quantity.String caches its
// text in the value, so calling it on the shared bounds from concurrent
// reviews would race.
var seedMemoryRange = " (the seed's memory limit is between " + minSeedMemory.String() + " and " + maxSeedMemory.String() + ")"

// unitDivisor asks the downward API for bytes.
var unitDivisor = resource.MustParse("1")

// seedMemoryEnv gives the seed its own memory limit, in bytes.
func seedMemoryEnv() corev1.EnvVar {
	return corev1.EnvVar{Name: contract.EnvSeedMemoryLimit, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
		ContainerName: contract.SeedContainerName, Resource: "limits.memory", Divisor: unitDivisor,
	}}}
}

// seedContainer is the opencode-seed init container. It runs as the OpenCode
// container's user, so that what it creates on the claim is that user's.
func seedContainer(ps *corev1.PodSpec, ci int, ws Workspace, s Settings, rec *record) corev1.Container {
	derived := derive(s)
	env := make([]corev1.EnvVar, 0, 8+len(homeEnv)+2) // every entry below, in one list
	env = append(env,
		corev1.EnvVar{Name: contract.EnvSeedRepo, Value: ws.Repo.URL},
		corev1.EnvVar{Name: contract.EnvSeedWorkspace, Value: ws.ClonePath()},
		corev1.EnvVar{Name: contract.EnvSeedAuthSource, Value: contract.AuthSourcePath},
		corev1.EnvVar{Name: contract.EnvSeedAuthTarget, Value: contract.AuthTargetPath},
		corev1.EnvVar{Name: contract.EnvSeedAllowedHosts, Value: derived.seedHosts},
	)
	if ws.Branch != "" {
		env = append(env, corev1.EnvVar{Name: contract.EnvSeedBranch, Value: ws.Branch})
	}
	env = append(env, seedMemoryEnv())
	env = append(env, homeEnv...)
	env = append(env, tokenEnv(ws.Secret))
	memory, _ := clampSeedMemory(ws.SeedMemory)
	c := corev1.Container{
		Name:    contract.SeedContainerName,
		Image:   s.SeedImage,
		Command: []string{contract.SeedBinaryPath},
		Args:    []string{seedSubcommand},
		Env:     env,
		VolumeMounts: []corev1.VolumeMount{
			dataMount(),
			{Name: contract.AuthVolumeName, MountPath: contract.AuthMountPath, ReadOnly: true},
		},
		Resources:                seedResources(memory),
		SecurityContext:          seedSecurityContext(ps, ci, rec),
		TerminationMessagePath:   terminationMessagePath,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		ImagePullPolicy:          derived.seedPullPolicy,
	}
	if ws.CABundle != "" {
		c.Env = append(c.Env, caSeedEnv()...)
		c.VolumeMounts = append(c.VolumeMounts, caSeedMount())
	}
	return c
}

// seedSecurityContext is hardened, with the OpenCode container's effective
// uid and gid. With no uid anywhere it is root, as the official OpenCode
// image is (git refuses a repository owned by another user). A pod that
// runs as a non-root uid without fsGroup gets one, or the seed could not
// write to a fresh claim.
func seedSecurityContext(ps *corev1.PodSpec, ci int, rec *record) *corev1.SecurityContext {
	csc := ps.Containers[ci].SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	psc := ps.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	uid := firstSet(csc.RunAsUser, psc.RunAsUser)
	gid := firstSet(csc.RunAsGroup, psc.RunAsGroup)
	nonRoot := firstSet(csc.RunAsNonRoot, psc.RunAsNonRoot)

	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		ReadOnlyRootFilesystem:   ptr.To(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		RunAsGroup:               gid,
	}
	if nonRoot != nil && *nonRoot {
		sc.RunAsNonRoot = ptr.To(true) // as strict as the container it serves
	}
	owner := uid
	switch {
	case uid != nil:
		sc.RunAsUser = uid
	case nonRoot != nil && *nonRoot:
		owner = ptr.To(seedImageUser)
		rec.SeedRunsAsImageUser = true
	default:
		sc.RunAsUser = ptr.To[int64](0)
	}
	if owner != nil && *owner != 0 && psc.FSGroup == nil {
		group := *owner
		if gid != nil {
			group = *gid
		}
		if ps.SecurityContext == nil {
			ps.SecurityContext = &corev1.PodSecurityContext{}
			rec.PodSecurityContextAdded = true
		}
		ps.SecurityContext.FSGroup = ptr.To(group)
		rec.FSGroup = ptr.To(group)
	}
	return sc
}

func firstSet[T any](vals ...*T) *T {
	for _, v := range vals {
		if v != nil {
			return ptr.To(*v)
		}
	}
	return nil
}

// pullPolicy is the API server's default for the image.
func pullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if _, tag, ok := strings.Cut(name, ":"); !ok || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}
