// Package provision creates the workspace's PersistentVolumeClaim when a
// labeled, injected Deployment asks for it with the storage annotation, in
// a namespace the cluster admin labeled for workspaces, and the claim does
// not exist. It never updates or deletes a claim: the claim
// it creates has no owner reference, is never pruned by Flux, and outlives
// the Deployment and the HelmRelease. It runs as a controller in the
// injector's manager, on the elected leader only; the admission webhook
// stays free of side effects.
package provision

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/angryninja/opencode-injector/contract"
)

// What the claims the injector creates carry.
const (
	// FieldManager names the injector in the claims' managedFields.
	FieldManager = "opencode-injector"
	// LabelManagedBy marks the claims the injector created.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "opencode-injector"
	// AnnotationFluxPrune keeps Flux from ever deleting the claim, even
	// when a Kustomization that applied it (it did not, but a user may
	// adopt it) stops declaring it.
	AnnotationFluxPrune = "kustomize.toolkit.fluxcd.io/prune"
	FluxPruneDisabled   = "disabled"
)

// Event reasons on the Deployment.
const (
	ReasonProvisioned = "ClaimProvisioned"
	ReasonMismatch    = "ClaimMismatch"
	ReasonFailed      = "ClaimProvisionFailed"
	// ControllerName is the Events' reporting controller.
	ControllerName = "opencode-injector"
)

// CacheOptions limit the manager's cache to what the controller watches:
// labeled Deployments (their metadata: see DeploymentMetadata) and the
// claims the injector created.
func CacheOptions() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:            {Label: labels.SelectorFromSet(labels.Set{contract.LabelInject: contract.LabelInjectEnabled})},
		&corev1.PersistentVolumeClaim{}: {Label: labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})},
	}
}

// DeploymentMetadata is an empty Deployment read as metadata only: the
// provisioner and the scale guard read nothing else of it, so the manager
// caches the labeled Deployments' metadata, never their pod templates.
// Every read of a Deployment through the manager's cache must use it (a
// typed read would start a second informer holding whole objects).
func DeploymentMetadata() *metav1.PartialObjectMetadata {
	d := &metav1.PartialObjectMetadata{}
	d.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
	return d
}

func deploymentMetadataList() *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DeploymentList"))
	return l
}

// Reconciler creates missing claims. Deployments come from the manager's
// cache (labeled ones only, metadata only); claims are read from the API server itself, so
// a claim declared in Git (not in the cache) is seen too.
type Reconciler struct {
	Deployments client.Reader // the manager's cached client
	// Namespaces reads Namespaces' labels (the manager's cached client:
	// metadata only), for the admin's consent.
	Namespaces client.Reader
	Claims     client.Reader // the manager's API reader
	Writer     client.Writer
	Recorder   recorder.EventRecorder
	// Identity names this replica (the leader election identity); the
	// Event that reports a creation names it.
	Identity string
}

// Add registers the controller with mgr. It runs only on the elected
// leader when the manager elects one.
func Add(mgr ctrl.Manager, identity string) error {
	r := &Reconciler{
		Deployments: mgr.GetClient(),
		Namespaces:  mgr.GetClient(),
		Claims:      mgr.GetAPIReader(),
		Writer:      mgr.GetClient(),
		Recorder:    mgr.GetEventRecorder(ControllerName),
		Identity:    identity,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("claim-provisioner").
		// Tests run several managers in one process.
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		For(&appsv1.Deployment{}, builder.OnlyMetadata, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A claim the injector created that is deleted is created again
		// (empty) while its Deployment still asks for it.
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.deploymentsOf), builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		// A namespace the admin labels for workspaces gets the claims its
		// Deployments already ask for.
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.deploymentsIn), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

// deploymentsOf are the cached Deployments whose workspace is the claim.
func (r *Reconciler) deploymentsOf(ctx context.Context, o client.Object) []reconcile.Request {
	list := deploymentMetadataList()
	if err := r.Deployments.List(ctx, list, client.InNamespace(o.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "list Deployments for a deleted claim", "namespace", o.GetNamespace(), "claim", o.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if contract.ClaimName(list.Items[i].Annotations, list.Items[i].Name) == o.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: list.Items[i].Name}})
		}
	}
	return reqs
}

// deploymentsIn are the cached Deployments of the namespace o.
func (r *Reconciler) deploymentsIn(ctx context.Context, o client.Object) []reconcile.Request {
	list := deploymentMetadataList()
	if err := r.Deployments.List(ctx, list, client.InNamespace(o.GetName())); err != nil {
		logf.FromContext(ctx).Error(err, "list Deployments of a relabeled namespace", "namespace", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// Reconcile creates the claim a Deployment asks for when it does not
// exist, and reports an existing claim that is smaller than asked or of
// another class. It never updates or deletes a claim.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	d := DeploymentMetadata()
	if err := r.Deployments.Get(ctx, req.NamespacedName, d); err != nil {
		// Gone, or no longer labeled: its claim stays.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if d.DeletionTimestamp != nil || d.Labels[contract.LabelInject] != contract.LabelInjectEnabled {
		return reconcile.Result{}, nil
	}
	if _, injected := d.Annotations[contract.AnnotationInjected]; !injected {
		// Not admitted by the webhook (a namespace it excludes, or created
		// before it was installed): not a workspace yet.
		return reconcile.Result{}, nil
	}
	// The injected annotation is anyone's to write where the webhook does
	// not run; the namespace label is the admin's alone.
	if ok, err := NamespaceConsents(ctx, r.Namespaces, d.Namespace); err != nil || !ok {
		return reconcile.Result{}, err
	}
	want, err := contract.ParseStorage(d.Annotations)
	if err != nil {
		// Admitted before the annotation was checked: say so, create nothing.
		r.event(d, nil, corev1.EventTypeWarning, ReasonFailed, "%s", err.Error())
		return reconcile.Result{}, nil
	}
	if want == nil {
		return reconcile.Result{}, nil
	}
	name := contract.ClaimName(d.Annotations, d.Name)
	log = log.WithValues("claim", contract.HideTokens(name)) // the claim annotation is anyone's to write
	var existing corev1.PersistentVolumeClaim
	err = r.Claims.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &existing)
	switch {
	case err == nil:
		if problems := Mismatch(&existing, *want); len(problems) > 0 {
			msg := strings.Join(problems, "; ")
			log.Info("the existing claim differs from what the Deployment asks", "problems", contract.HideTokens(msg))
			r.event(d, &existing, corev1.EventTypeWarning, ReasonMismatch, "%s (replica %s)", msg, r.Identity)
		}
		return reconcile.Result{}, nil
	case !apierrors.IsNotFound(err):
		return reconcile.Result{}, tokensHidden{fmt.Errorf("read PersistentVolumeClaim %s/%s: %w", d.Namespace, name, err)}
	}
	pvc := NewClaim(d.Namespace, name, *want)
	if err := r.Writer.Create(ctx, pvc, client.FieldOwner(FieldManager)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Created meanwhile (by Flux, or the user): left alone; the
			// next reconcile compares it.
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		r.event(d, nil, corev1.EventTypeWarning, ReasonFailed, "cannot create PersistentVolumeClaim %s: %v", name, err)
		return reconcile.Result{}, tokensHidden{fmt.Errorf("create PersistentVolumeClaim %s/%s: %w", d.Namespace, name, err)}
	}
	log.Info("created the workspace claim", "size", want.Size.String(), "storageClass", contract.HideTokens(classOrDefault(want.Class)), "replica", r.Identity)
	r.event(d, pvc, corev1.EventTypeNormal, ReasonProvisioned, "created PersistentVolumeClaim %s (%s, storage class %s, ReadWriteOnce; never deleted by the injector) on replica %s",
		name, want.Size.String(), classOrDefault(want.Class), r.Identity)
	return reconcile.Result{}, nil
}

// event reports on the Deployment, with token-like values hidden (the
// annotations' values are anyone's to write).
func (r *Reconciler) event(d *metav1.PartialObjectMetadata, related runtime.Object, eventType, reason, format string, args ...any) {
	r.Recorder.Eventf(d, related, eventType, reason, "Provision", "%s", contract.HideTokens(fmt.Sprintf(format, args...)))
}

func classOrDefault(c string) string {
	if c == "" {
		return "(the default)"
	}
	return c
}

// NewClaim is the claim the injector creates: ReadWriteOnce, of the asked
// size and class, labeled as the injector's, never pruned by Flux, and
// without an owner reference, so that deleting the Deployment or its
// HelmRelease never deletes the data.
func NewClaim(namespace, name string, s contract.Storage) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   namespace,
			Name:        name,
			Labels:      map[string]string{LabelManagedBy: ManagedBy},
			Annotations: map[string]string{AnnotationFluxPrune: FluxPruneDisabled},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: s.Size.DeepCopy()},
			},
		},
	}
	if s.Class != "" {
		class := s.Class
		pvc.Spec.StorageClassName = &class
	}
	return pvc
}

// Mismatch says how an existing claim falls short of what the annotations
// ask: smaller than asked (its size is the larger of its request and its
// capacity, so a claim expanded later is fine) or, when a class is named,
// of another class. Empty when it does not.
func Mismatch(pvc *corev1.PersistentVolumeClaim, want contract.Storage) []string {
	var out []string
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if c, ok := pvc.Status.Capacity[corev1.ResourceStorage]; ok && c.Cmp(size) > 0 {
		size = c
	}
	if size.Cmp(want.Size) < 0 {
		out = append(out, fmt.Sprintf("PersistentVolumeClaim %s is %s, smaller than the %s asked by %s: the injector never resizes a claim; expand it (raise spec.resources.requests.storage, if its storage class allows expansion) or lower the annotation",
			pvc.Name, quantityOrNone(size), want.Size.String(), contract.AnnotationStorage))
	}
	if want.Class != "" {
		got := ""
		if pvc.Spec.StorageClassName != nil {
			got = *pvc.Spec.StorageClassName
		}
		if got != want.Class {
			out = append(out, fmt.Sprintf("PersistentVolumeClaim %s has storage class %q, not the %q asked by %s: a claim's class cannot change and the injector never replaces a claim; move the data to a new claim named by %s, or change the annotation",
				pvc.Name, got, want.Class, contract.AnnotationStorageClass, contract.AnnotationClaim))
		}
	}
	return out
}

func quantityOrNone(q resource.Quantity) string {
	if q.IsZero() {
		return "of no size"
	}
	return q.String()
}

// tokensHidden is an error whose message has token-like values hidden (a
// claim's name comes from an annotation, and the API server's message
// repeats it); controller-runtime logs it as is.
type tokensHidden struct{ err error }

func (e tokensHidden) Error() string { return contract.HideTokens(e.err.Error()) }
func (e tokensHidden) Unwrap() error { return e.err }
