package node_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/test/node"
)

// checkRestrictedEnforced proves the API server enforces Pod Security
// "restricted" in ns: a privileged Pod, created as a dry run, is refused.
// Without it, the workspace Pod running in ns would prove nothing about
// its admission.
func checkRestrictedEnforced(t *testing.T, c *node.Cluster, ns string) {
	t.Helper()
	privileged := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "violates-restricted"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "privileged", Image: node.PauseImage,
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		}}},
	}
	_, err := c.Client.CoreV1().Pods(ns).Create(context.Background(), privileged, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
		t.Fatalf("namespace %s does not enforce Pod Security restricted: a privileged Pod's dry-run create returned %v, want Forbidden by PodSecurity", ns, err)
	}
}
