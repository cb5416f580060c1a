package provision

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
)

// NamespaceConsents tells whether the cluster admin has labeled namespace
// with contract.LabelWorkspaces: the consent without which the injector
// creates no claim there. It reads the Namespace's metadata only, through
// reader (the manager's client: a metadata-only cache of Namespaces).
func NamespaceConsents(ctx context.Context, reader client.Reader, namespace string) (bool, error) {
	ns := namespaceMetadata()
	if err := reader.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return false, fmt.Errorf("read the labels of namespace %s: %w", namespace, err)
	}
	return ns.Labels[contract.LabelWorkspaces] == contract.LabelWorkspacesEnabled, nil
}

// namespaceMetadata is an empty Namespace read as metadata only, so the
// manager caches Namespaces' metadata, never their specs.
func namespaceMetadata() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}
