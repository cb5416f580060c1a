package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/angryninja/opencode-injector/test/node"
)

const seedMemoryNS = "seed-memory"

// tooLargeForTheMinimum is a repository the seed cannot clone under the
// least seed-memory (128Mi): its 48 MiB file's second version is a delta
// onto the first, and building it takes both (96 MiB) plus the seed's
// reserve, more than 85% of 128 MiB; under the default 256Mi it fits.
var tooLargeForTheMinimum = gitserver.Shape{Name: "delta-48m", LargeFile: 48 << 20, Versions: 2, Files: 3, Fanout: 1, Depth: 1}

// reducedShapes are the seed benchmarks' other shapes (gitserver.Shapes)
// at a fifth of their size or less, so the node clones them in seconds:
// many files deep in trees, a long history, many objects.
var reducedShapes = []gitserver.Shape{
	{Name: "deep-reduced", Files: 4_000, Fanout: 4, Depth: 6},
	{Name: "history-reduced", Files: 20, Fanout: 1, Depth: 1, Commits: 400, Touch: 20},
	{Name: "objects-reduced", Files: 4_000, Fanout: 10, Depth: 3, Commits: 270, Touch: 40},
}

// TestSeedMemory runs the seed in its real memory cgroup on the node, in
// workspaces injected by the installed injector cloning from the suite's
// git server: the seed benchmarks' full-size 200 MB file (page cache
// charged) and their other shapes, reduced, clone under the default seed
// memory limit without being killed, and a delta that cannot fit under
// annotation seed-memory's minimum stops the seed with exit 8, never 137,
// with the Pod's status (what `kubectl describe pod` shows) naming the
// annotation that raises the limit.
func TestSeedMemory(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	installInjector(t, c)
	importWorkload(t, c)
	srv := gitServer(t)
	cache, err := gitserver.ShapeCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	fitting := append([]gitserver.Shape{gitserver.ShapeLarge}, reducedShapes...)
	for _, s := range append(fitting, tooLargeForTheMinimum) {
		if _, err := gitserver.MakeShapeCached(cache, srv.Root, "shapes", s.Name, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Namespace(ctx, seedMemoryNS, nil); err != nil {
		t.Fatal(err)
	}
	workspaceSecrets(t, c, seedMemoryNS)
	// All at once: each Pod has its own cgroup.
	for _, s := range fitting {
		seedWorkspace(t, c, s.Name, srv.RepoURL("shapes", s.Name), "")
	}
	seedWorkspace(t, c, "too-small", srv.RepoURL("shapes", tooLargeForTheMinimum.Name), "128Mi")

	t.Run("the 200 MB file under the default limit", func(t *testing.T) {
		// The cgroup's peak counts the page cache the clone writes
		// through, which the kernel reclaims at the limit; the seed's own
		// memory is its anonymous memory, sampled while it runs.
		if rss := checkClonesUnderDefault(t, c, gitserver.ShapeLarge.Name); rss == 0 {
			t.Error("the Pod's anonymous memory was never sampled while the seed ran")
		}
	})
	for _, s := range reducedShapes {
		t.Run("shape "+s.Name+" under the default limit", func(t *testing.T) { checkClonesUnderDefault(t, c, s.Name) })
	}

	t.Run("a delta too large for the limit", func(t *testing.T) {
		pod := waitSeed(t, c, "too-small", func(_ *corev1.Pod, s corev1.ContainerStatus) bool {
			return s.State.Terminated != nil && s.State.Terminated.ExitCode != 0 || s.LastTerminationState.Terminated != nil
		})
		seed := pod.Status.InitContainerStatuses[0]
		// Both the current and the last state: a restarted seed must
		// not hide a first run that was killed.
		for _, term := range []*corev1.ContainerStateTerminated{seed.State.Terminated, seed.LastTerminationState.Terminated} {
			if term == nil {
				continue
			}
			// What `kubectl describe pod` shows as the init container's
			// (last) state: reason, exit code and message.
			t.Logf("the seed's state: reason %s, exit code %d, message:\n%s", term.Reason, term.ExitCode, term.Message)
			if term.ExitCode != 8 || term.Reason == "OOMKilled" {
				t.Errorf("the seed ended with %d (%s), want exit 8, never 137 nor OOMKilled", term.ExitCode, term.Reason)
			}
			for _, want := range []string{"not enough memory", "annotation " + contract.AnnotationSeedMemory, "`" + contract.AnnotationSeedMemory + ": 256Mi`"} {
				if !strings.Contains(term.Message, want) {
					t.Errorf("the Pod's status does not say %q: %q", want, term.Message)
				}
			}
		}
	})
}

// checkClonesUnderDefault waits for the seed of Deployment name to end and
// requires that it cloned at its first try (exit 0, no restart, not
// killed) under the default seed memory limit; it logs the Pod's cgroup
// peak and returns the seed's anonymous memory at most, sampled every
// 100 ms while it ran (0 when it ended before a sample).
func checkClonesUnderDefault(t *testing.T, c *node.Cluster, name string) int64 {
	t.Helper()
	var rss int64
	pod := waitSeed(t, c, name, func(p *corev1.Pod, s corev1.ContainerStatus) bool {
		if now, err := node.PodRSS(p); err == nil {
			rss = max(rss, now)
		}
		return s.State.Terminated != nil || s.LastTerminationState.Terminated != nil
	})
	seed := pod.Status.InitContainerStatuses[0]
	if term := seed.State.Terminated; term == nil || term.ExitCode != 0 || term.Reason == "OOMKilled" || seed.RestartCount != 0 || seed.LastTerminationState.Terminated != nil {
		t.Fatalf("the seed did not clone %s at its first try: %+v, restarts %d", name, seed, seed.RestartCount)
	}
	limit := pod.Spec.InitContainers[0].Resources.Limits[corev1.ResourceMemory]
	if limit.Cmp(injection.DefaultSeedMemory) != 0 {
		t.Errorf("the seed's memory limit is %s, want the default %s", limit.String(), injection.DefaultSeedMemory.String())
	}
	peak, err := node.PodMemoryPeak(pod)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := c.Logs(context.Background(), seedMemoryNS, pod.Name, contract.SeedContainerName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed: %s", logs)
	t.Logf("the seed cloning %s under its limit %s: cgroup peak %d MiB (the Pod's memory.max_usage_in_bytes, page cache included; the main container sleeps), anonymous memory at most %d MiB (total_rss, sampled every 100 ms)",
		name, limit.String(), peak>>20, rss>>20)
	return rss
}

// seedWorkspace creates a labeled Deployment name injected with repoURL
// and seedMemory (when set), on a claim of its own; its container is a
// program that sleeps, so the Pod's memory is the seed's. It is deleted
// when t ends, so a failing seed does not retry for the rest of the run.
func seedWorkspace(t *testing.T, c *node.Cluster, name, repoURL, seedMemory string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.LocalPV(ctx, seedMemoryNS+"-"+name, "2Gi"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(seedMemoryNS).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(node.LocalStorageClass), VolumeName: seedMemoryNS + "-" + name,
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	annotations := map[string]string{contract.AnnotationRepo: repoURL, contract.AnnotationCABundle: "git-ca"}
	if seedMemory != "" {
		annotations[contract.AnnotationSeedMemory] = seedMemory
	}
	podLabels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{contract.LabelInject: "true"}, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000), FSGroup: ptr.To[int64](1000)},
					Containers:      []corev1.Container{workloadContainer(contract.DefaultContainerName, "sleep")},
				},
			},
		},
	}
	if _, err := c.Client.AppsV1().Deployments(seedMemoryNS).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Client.AppsV1().Deployments(seedMemoryNS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete deployment %s: %v", name, err)
		}
	})
}

// waitSeed polls, every 100 ms, the Pod of the Deployment name until done
// is true for it and its seed init container's status, and returns it.
func waitSeed(t *testing.T, c *node.Cluster, name string, done func(*corev1.Pod, corev1.ContainerStatus) bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		pods, err := c.Client.CoreV1().Pods(seedMemoryNS).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pods.Items {
			if len(p.Status.InitContainerStatuses) > 0 && done(&pods.Items[i], p.Status.InitContainerStatuses[0]) {
				return &pods.Items[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the seed of %s did not end:\n%s\n%s", name, podsStatus(ctx, c, seedMemoryNS), events(ctx, c, seedMemoryNS))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
