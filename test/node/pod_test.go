package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/test/node"
)

const workloadImage = "localhost/opencode-node-test/workload:1"

var (
	workloadOnce sync.Once
	workloadErr  error
)

// importWorkload imports ./workload's image, once per run.
func importWorkload(t *testing.T, c *node.Cluster) {
	t.Helper()
	workloadOnce.Do(func() { workloadErr = c.ImportProgram(context.Background(), "./workload", workloadImage, "") })
	if workloadErr != nil {
		t.Fatal(workloadErr)
	}
}

func workloadContainer(name string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: workloadImage, ImagePullPolicy: corev1.PullNever, Args: args}
}

// TestPodOnTheNode runs what a cluster does to a workspace Pod, with a
// program of our own: an init container writing to a local
// PersistentVolume, a Secret in the env, the downward API's limits.memory,
// an fsGroup the kubelet applies to the volume, and, in a second Pod, a
// memory limit the kernel enforces (OOMKilled).
func TestPodOnTheNode(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	importWorkload(t, c)
	ns := "pod-on-node"
	if err := c.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := c.LocalPV(ctx, "pod-on-node", "1Gi")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"password": "hunter2"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(node.LocalStorageClass), VolumeName: "pod-on-node",
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	main := workloadContainer("main", "env", "PASSWORD", "MEMORY_LIMIT", "--", "id", "--", "stat", "/data/init.txt", "--", "write", "/data/main.txt", "main")
	main.Env = []corev1.EnvVar{
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "password"}}},
		{Name: "MEMORY_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.memory"}}},
	}
	main.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("96Mi")}
	init := workloadContainer("init", "write", "/data/init.txt", "init")
	for _, ctr := range []*corev1.Container{&main, &init} {
		ctr.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "volume"},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000)},
			InitContainers:  []corev1.Container{init},
			Containers:      []corev1.Container{main},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		},
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitForPod(ctx, ns, "volume", 2*time.Minute, node.Finished)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s: init %+v, main %+v", done.Status.Phase, done.Status.InitContainerStatuses, done.Status.ContainerStatuses)
	}
	logs, err := c.Logs(ctx, ns, "volume", "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"PASSWORD=hunter2\n",
		"MEMORY_LIMIT=100663296\n", // 96Mi, in bytes
		"uid=1000 gid=1000 groups=[1000 2000]\n",
		"/data/init.txt uid=1000 gid=2000 ", // written by the init container, in the fsGroup
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("main's log lacks %q:\n%s", want, logs)
		}
	}
	// On the node: the kubelet gave the volume to the fsGroup (setgid).
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if gid := info.Sys().(*syscall.Stat_t).Gid; gid != 2000 || info.Mode()&os.ModeSetgid == 0 {
		t.Errorf("volume directory: gid %d mode %v, want gid 2000 with setgid", gid, info.Mode())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "main.txt")); err != nil || string(b) != "main" {
		t.Errorf("main.txt on the volume: %q, %v", b, err)
	}
}

// TestMemoryLimitKills runs a container that allocates past its memory
// limit: the kernel's memory cgroup kills it and the kubelet reports
// OOMKilled, as on a cluster.
func TestMemoryLimitKills(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	importWorkload(t, c)
	ns := "memory-limit"
	if err := c.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	hog := workloadContainer("hog", "alloc", "200")
	hog.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hog"},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{hog}},
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitForPod(ctx, ns, "hog", 2*time.Minute, node.Finished)
	if err != nil {
		t.Fatal(err)
	}
	term := done.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Fatalf("hog ended %+v, want OOMKilled with 137", done.Status.ContainerStatuses[0].State)
	}
}
