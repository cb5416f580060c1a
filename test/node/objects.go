package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalStorageClass is the storage class of LocalPV's volumes.
const LocalStorageClass = "local"

// Namespace creates namespace name with labels and waits for its default
// ServiceAccount (the controller-manager creates it), without which no Pod
// is admitted.
func (c *Cluster) Namespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return waitFor("namespace "+name+"'s default ServiceAccount", time.Minute, nil, func() error {
		_, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// LocalPV creates a local PersistentVolume of size on the node, in a new
// directory of the run's work directory, and returns that directory.
func (c *Cluster) LocalPV(ctx context.Context, name, size string) (string, error) {
	dir := filepath.Join(c.dir, "volumes", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              LocalStorageClass,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{NodeName}}},
			}}}},
		},
	}
	if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create PersistentVolume %s: %w", name, err)
	}
	return dir, nil
}

// WaitForPod waits until done(pod) is true for the Pod ns/name, and returns
// the Pod; it gives up after timeout with the Pod's last status.
func (c *Cluster) WaitForPod(ctx context.Context, ns, name string, timeout time.Duration, done func(*corev1.Pod) bool) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := waitFor("pod "+ns+"/"+name, timeout, nil, func() error {
		var err error
		if pod, err = c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		if done(pod) {
			return nil
		}
		return fmt.Errorf("phase %s, status %+v", pod.Status.Phase, pod.Status.ContainerStatuses)
	})
	return pod, err
}

// Finished is true for a Pod that has Succeeded or Failed.
func Finished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// Logs is a container's log, read through the API server from the kubelet
// (as kubectl logs does).
func (c *Cluster) Logs(ctx context.Context, ns, pod, container string) (string, error) {
	b, err := c.Client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("logs of %s/%s %s: %w", ns, pod, container, err)
	}
	return string(b), nil
}
