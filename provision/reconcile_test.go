package provision

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/angryninja/opencode-injector/contract"
)

// These tests guard the reconciler's decisions without an API server;
// test/provision runs it on a real one.

func workspaceIn(namespace string, edit func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Namespace: namespace, Name: "ws",
		Labels:      map[string]string{contract.LabelInject: contract.LabelInjectEnabled},
		Annotations: map[string]string{contract.AnnotationInjected: "{}", contract.AnnotationStorage: "5Gi"},
	}}
	if edit != nil {
		edit(d)
	}
	return d
}

func reconcilerOf(objs ...client.Object) (*Reconciler, client.Client, *events.FakeRecorder) {
	c := fake.NewClientBuilder().WithObjects(objs...).Build()
	rec := events.NewFakeRecorder(10)
	return &Reconciler{Deployments: metadataOnly(c), Namespaces: c, Claims: c, Writer: c, Recorder: rec, Identity: "injector-0"}, c, rec
}

// metadataOnly is c refusing typed Deployment reads: the manager's cache
// holds the Deployments' metadata only, and a typed read would start a
// second informer holding whole objects.
func metadataOnly(c client.WithWatch) client.Reader {
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, typed := obj.(*appsv1.Deployment); typed {
				return errors.New("a typed Deployment read: read DeploymentMetadata")
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, typed := list.(*appsv1.DeploymentList); typed {
				return errors.New("a typed Deployment list: list metadata")
			}
			return c.List(ctx, list, opts...)
		},
	})
}

func namespaceWith(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

var consenting = map[string]string{contract.LabelWorkspaces: contract.LabelWorkspacesEnabled}

func TestReconcileCreatesClaimsOnlyWhereTheAdminConsents(t *testing.T) {
	for _, c := range []struct {
		name    string
		ns      *corev1.Namespace
		d       *appsv1.Deployment
		created bool
	}{
		{"a labeled namespace gets the claim", namespaceWith("ws-ns", consenting), workspaceIn("ws-ns", nil), true},
		{"an unlabeled namespace gets nothing", namespaceWith("ws-ns", nil), workspaceIn("ws-ns", nil), false},
		{"a label other than true is no consent", namespaceWith("ws-ns", map[string]string{contract.LabelWorkspaces: "false"}), workspaceIn("ws-ns", nil), false},
		{"kube-system with a forged record gets nothing", namespaceWith("kube-system", nil), workspaceIn("kube-system", nil), false},
		{"a Deployment the webhook did not admit gets nothing", namespaceWith("ws-ns", consenting), workspaceIn("ws-ns", func(d *appsv1.Deployment) {
			delete(d.Annotations, contract.AnnotationInjected)
		}), false},
		{"a Deployment without the label gets nothing", namespaceWith("ws-ns", consenting), workspaceIn("ws-ns", func(d *appsv1.Deployment) {
			d.Labels[contract.LabelInject] = "false"
		}), false},
		{"a Deployment without storage gets nothing", namespaceWith("ws-ns", consenting), workspaceIn("ws-ns", func(d *appsv1.Deployment) {
			delete(d.Annotations, contract.AnnotationStorage)
		}), false},
		{"a Deployment being deleted gets nothing", namespaceWith("ws-ns", consenting), workspaceIn("ws-ns", func(d *appsv1.Deployment) {
			d.DeletionTimestamp = ptr.To(metav1.Now())
			d.Finalizers = []string{"example.com/hold"}
		}), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, cl, _ := reconcilerOf(c.ns, c.d)
			if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c.d)}); err != nil {
				t.Fatal(err)
			}
			var pvc corev1.PersistentVolumeClaim
			err := cl.Get(context.Background(), client.ObjectKey{Namespace: c.d.Namespace, Name: "ws"}, &pvc)
			if created := err == nil; created != c.created {
				t.Fatalf("claim created=%v, want %v (%v)", created, c.created, err)
			}
			if c.created {
				if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("5Gi")) != 0 {
					t.Errorf("claim of %s, want 5Gi", got.String())
				}
			}
		})
	}
}

// A namespace that cannot be read is an error (retried), never a consent.
func TestReconcileWithoutItsNamespaceCreatesNothing(t *testing.T) {
	d := workspaceIn("ws-ns", nil)
	r, cl, _ := reconcilerOf(d)
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(d)}); !apierrors.IsNotFound(err) {
		t.Errorf("want the namespace's NotFound, got %v", err)
	}
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: "ws-ns", Name: "ws"}, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Errorf("a claim was created: %v", err)
	}
}

// The Events quote the annotations, which anyone who may edit the
// Deployment writes: no token-like value is repeated.
func TestEventsHideTokens(t *testing.T) {
	token := "glpat-0123456789abcdefabcd"
	d := workspaceIn("ws-ns", func(d *appsv1.Deployment) { d.Annotations[contract.AnnotationStorageClass] = token })
	existing := NewClaim("ws-ns", "ws", contract.Storage{Size: resource.MustParse("5Gi"), Class: "slow"})
	r, _, rec := reconcilerOf(namespaceWith("ws-ns", consenting), d, existing)
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(d)}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, ReasonMismatch) || strings.Contains(e, "0123456789abcdef") {
			t.Errorf("event %q: want a %s Event without the token", e, ReasonMismatch)
		}
	default:
		t.Fatal("no Event")
	}
}

// Issue 18 review, finding 7: a claim named by a token-like value (a
// lowercase glpat- is a valid name) shows in no log line and no error the
// reconciler returns (controller-runtime logs it), whether the read or the
// create fails; a storage class likewise.
func TestReconcileLogsAndErrorsHideTokens(t *testing.T) {
	token := "glpat-0123456789abcdefabcd"
	for _, fail := range []string{"get", "create", "none"} {
		d := workspaceIn("ws-ns", func(d *appsv1.Deployment) {
			d.Annotations[contract.AnnotationClaim] = token
			d.Annotations[contract.AnnotationStorageClass] = token
		})
		c := fake.NewClientBuilder().WithObjects(namespaceWith("ws-ns", consenting), d).Build()
		refuse := func(obj client.Object) error {
			return apierrors.NewForbidden(corev1.Resource("persistentvolumeclaims"), obj.GetName(), errors.New("quota"))
		}
		claims := interceptor.NewClient(c, interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if fail == "get" {
					return apierrors.NewForbidden(corev1.Resource("persistentvolumeclaims"), key.Name, errors.New("quota"))
				}
				return c.Get(ctx, key, obj, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if fail == "create" {
					return refuse(obj)
				}
				return c.Create(ctx, obj, opts...)
			},
		})
		r := &Reconciler{Deployments: metadataOnly(c), Namespaces: c, Claims: claims, Writer: claims, Recorder: events.NewFakeRecorder(10), Identity: "injector-0"}
		var logged strings.Builder
		ctx := logf.IntoContext(context.Background(), funcr.New(func(prefix, args string) { logged.WriteString(prefix + args + "\n") }, funcr.Options{}))
		_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(d)})
		if (err != nil) != (fail != "none") {
			t.Fatalf("%s: %v", fail, err)
		}
		if err != nil && (strings.Contains(err.Error(), "0123456789abcdef") || !apierrors.IsForbidden(err)) {
			t.Errorf("%s: the error shows the token or lost its cause: %v", fail, err)
		}
		if strings.Contains(logged.String(), "0123456789abcdef") || fail == "none" && !strings.Contains(logged.String(), "created the workspace claim") {
			t.Errorf("%s: logged %q", fail, logged.String())
		}
	}
}
