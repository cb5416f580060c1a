package webhook

import (
	"context"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/provision"
)

// claimLookupTimeout bounds the one read of the claim an admission review
// makes; past it the review goes on without the claim's warning.
const claimLookupTimeout = 2 * time.Second

// claimWarnings reads the claim an injected Deployment asks the injector to
// provision (storage annotation) and warns when it exists but is smaller
// than asked or of another class. It is a read only: nothing is created
// here (the controller creates a missing claim), so dry runs stay free of
// side effects. It warns when the ask is new (a CREATE, or an UPDATE that
// changes the storage, storage-class or claim annotation), so repeated
// updates stay quiet; the controller's Event on the Deployment keeps the
// report.
func (h *Handler) claimWarnings(ctx context.Context, req admissionv1.Operation, d *appsv1.Deployment, old *metav1.ObjectMeta) []string {
	if h.Claims == nil || d.DeletionTimestamp != nil {
		return nil
	}
	want, err := contract.ParseStorage(d.Annotations)
	if err != nil || want == nil {
		return nil
	}
	if req == admissionv1.Update && old != nil && !storageAskChanged(d.Annotations, old.Annotations) {
		return nil
	}
	name := contract.ClaimName(d.Annotations, d.Name)
	ctx, cancel := context.WithTimeout(ctx, claimLookupTimeout)
	defer cancel()
	var pvc corev1.PersistentVolumeClaim
	if err := h.Claims.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &pvc); err != nil {
		if !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).Info("cannot read the workspace claim; no claim warning", "claim", contract.HideTokens(name), "reason", contract.HideTokens(err.Error()))
		}
		return nil
	}
	return provision.Mismatch(&pvc, *want)
}

func storageAskChanged(cur, old map[string]string) bool {
	for _, k := range []string{contract.AnnotationStorage, contract.AnnotationStorageClass, contract.AnnotationClaim} {
		a, okA := cur[k]
		b, okB := old[k]
		if a != b || okA != okB {
			return true
		}
	}
	return false
}
