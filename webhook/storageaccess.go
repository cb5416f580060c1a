package webhook

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/provision"
)

// storageAdmission guards a new ask for a claim (the storage annotation on
// a CREATE, or changed by an UPDATE): the injector creates claims with its
// own cluster-wide right, so the ask is denied unless the requesting user
// may create PersistentVolumeClaims in the namespace (a SubjectAccessReview
// on the request's user), and it warns when the namespace is not labeled
// for workspaces, where the injector creates nothing. denial is the
// message of a refusal; err is a review that could not be made (the
// webhook then fails closed).
func (h *Handler) storageAdmission(ctx context.Context, op admissionv1.Operation, user authenticationv1.UserInfo, d *appsv1.Deployment, old *metav1.ObjectMeta) (warnings []string, denial string, err error) {
	if h.Access == nil || d.DeletionTimestamp != nil {
		return nil, "", nil
	}
	if _, asked := d.Annotations[contract.AnnotationStorage]; !asked {
		return nil, "", nil
	}
	// An unchanged ask was checked when it was made, but only if the stored
	// object was already a workspace: adding the label to a Deployment that
	// carried the annotation unchecked makes a new ask.
	if op == admissionv1.Update && old != nil && old.Labels[contract.LabelInject] == contract.LabelInjectEnabled && !storageAskChanged(d.Annotations, old.Annotations) {
		return nil, "", nil
	}
	review := pvcCreateReview(user, d.Namespace)
	if err := h.Access.Create(ctx, review); err != nil {
		return nil, "", fmt.Errorf("ask whether %s may create PersistentVolumeClaims in %s: %w", user.Username, d.Namespace, err)
	}
	if !review.Status.Allowed {
		return nil, fmt.Sprintf("annotation %s: user %s may not create PersistentVolumeClaims in namespace %s, and the injector creates a claim only for a user who may; "+
			"ask for that right, or remove the annotation and declare the claim yourself", contract.AnnotationStorage, user.Username, d.Namespace), nil
	}
	if h.Namespaces == nil {
		return nil, "", nil
	}
	consents, err := provision.NamespaceConsents(ctx, h.Namespaces, d.Namespace)
	if err != nil {
		return nil, "", err
	}
	if !consents {
		return []string{fmt.Sprintf("annotation %s: namespace %s is not labeled %s=%s, so the injector creates no claim here; "+
			"ask the cluster admin to label the namespace, or declare the claim yourself", contract.AnnotationStorage, d.Namespace, contract.LabelWorkspaces, contract.LabelWorkspacesEnabled)}, "", nil
	}
	return nil, "", nil
}

// pvcCreateReview asks whether user may create PersistentVolumeClaims in
// namespace.
func pvcCreateReview(user authenticationv1.UserInfo, namespace string) *authorizationv1.SubjectAccessReview {
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: "create", Resource: "persistentvolumeclaims"},
	}}
}
