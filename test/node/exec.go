package node

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

// Exec runs command in a container of a running Pod through the API server
// and the kubelet (as kubectl exec does) and returns its output, stdout
// then stderr; a command that exits non-zero is an error carrying both.
func (c *Cluster) Exec(ctx context.Context, ns, pod, container string, command ...string) (string, error) {
	req := c.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(c.Config, "POST", req.URL())
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s %s: %w", ns, pod, container, err)
	}
	var stdout, stderr bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("exec %v in %s/%s %s: %w: stdout %q, stderr %q", command, ns, pod, container, err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String(), nil
}
