package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/angryninja/opencode-injector/contract"
)

// These tests guard the claim warnings without an API server: when they
// appear (a new ask meets a claim smaller than asked or of another class)
// and when they must not (no ask, a bad ask, an unchanged ask, a claim as
// asked, no claim, a Deployment being deleted).

func claimOf(name, size, class string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "opencode", Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(class),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
}

func asking(annotations map[string]string) *appsv1.Deployment {
	d := deployment("opencode", "ws", workspaceLabel)
	d.Annotations = annotations
	return d
}

func TestClaimWarnings(t *testing.T) {
	ask := map[string]string{contract.AnnotationStorage: "5Gi", contract.AnnotationStorageClass: "fast"}
	with := func(k, v string) map[string]string {
		a := map[string]string{}
		for key, val := range ask {
			a[key] = val
		}
		a[k] = v
		return a
	}
	small := claimOf("ws", "1Gi", "fast")
	deleting := asking(ask)
	deleting.DeletionTimestamp = &metav1.Time{}
	for _, c := range []struct {
		name   string
		claims client.Reader
		op     admissionv1.Operation
		d      *appsv1.Deployment
		old    map[string]string // nil: no stored object
		want   []string          // substrings; nil: no warning
	}{
		{"a create meets a smaller claim", readerOf(small), admissionv1.Create, asking(ask), nil, []string{"is 1Gi, smaller than the 5Gi"}},
		{"a create meets a claim of another class", readerOf(claimOf("ws", "5Gi", "slow")), admissionv1.Create, asking(ask), nil, []string{`storage class "slow", not the "fast"`}},
		{"a create meets a claim as asked", readerOf(claimOf("ws", "5Gi", "fast")), admissionv1.Create, asking(ask), nil, nil},
		{"a create meets no claim", readerOf(), admissionv1.Create, asking(ask), nil, nil},
		{"the claim annotation names the claim read", readerOf(small, claimOf("data", "5Gi", "fast")), admissionv1.Create, asking(with(contract.AnnotationClaim, "data")), nil, nil},
		{"no storage annotation, no warning", readerOf(small), admissionv1.Create, asking(map[string]string{}), nil, nil},
		{"a bad storage annotation is the denial's, not a warning's", readerOf(small), admissionv1.Create, asking(with(contract.AnnotationStorage, "lots")), nil, nil},
		{"a Deployment being deleted is not warned about", readerOf(small), admissionv1.Update, deleting, nil, nil},
		{"an update that keeps the ask is quiet", readerOf(small), admissionv1.Update, asking(ask), ask, nil},
		{"an update that changes the size warns", readerOf(claimOf("ws", "6Gi", "fast")), admissionv1.Update, asking(with(contract.AnnotationStorage, "8Gi")), ask, []string{"smaller than the 8Gi"}},
		{"an update that changes the class warns", readerOf(claimOf("ws", "5Gi", "fast")), admissionv1.Update, asking(with(contract.AnnotationStorageClass, "slow")), ask, []string{`not the "slow"`}},
		{"an update that names another claim warns", readerOf(claimOf("data", "1Gi", "fast")), admissionv1.Update, asking(with(contract.AnnotationClaim, "data")), ask, []string{"data is 1Gi"}},
		{"an update that adds the ask warns", readerOf(small), admissionv1.Update, asking(ask), map[string]string{}, []string{"smaller than the 5Gi"}},
		{"an update without a stored object warns", readerOf(small), admissionv1.Update, asking(ask), nil, []string{"smaller than the 5Gi"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &Handler{Settings: testSettings(), Claims: c.claims}
			var old *metav1.ObjectMeta
			if c.old != nil {
				old = &metav1.ObjectMeta{Name: "ws", Annotations: c.old}
			}
			got := h.claimWarnings(context.Background(), c.op, c.d, old)
			if len(got) != len(c.want) {
				t.Fatalf("warnings %q, want %d matching %q", got, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q does not say %q", got[i], w)
				}
			}
		})
	}
}

// A handler without a claim reader (the offline paths) warns about nothing.
func TestClaimWarningsWithoutAReader(t *testing.T) {
	h := &Handler{Settings: testSettings()}
	if got := h.claimWarnings(context.Background(), admissionv1.Create, asking(map[string]string{contract.AnnotationStorage: "5Gi"}), nil); got != nil {
		t.Errorf("warnings without a claim reader: %q", got)
	}
}

// Issue 18 review, finding 7: a claim that cannot be read is logged
// without a token-like claim name (a lowercase glpat- is a valid name),
// neither as the claim nor in the API server's reason.
func TestClaimWarningsLogNoToken(t *testing.T) {
	token := "glpat-0123456789abcdefabcd"
	failing := interceptor.NewClient(fake.NewClientBuilder().Build(), interceptor.Funcs{
		Get: func(_ context.Context, _ client.WithWatch, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
			return apierrors.NewForbidden(corev1.Resource("persistentvolumeclaims"), key.Name, errors.New("denied"))
		},
	})
	var logged strings.Builder
	ctx := logf.IntoContext(context.Background(), funcr.New(func(prefix, args string) { logged.WriteString(prefix + args + "\n") }, funcr.Options{}))
	h := &Handler{Settings: testSettings(), Claims: failing}
	h.claimWarnings(ctx, admissionv1.Create, asking(map[string]string{contract.AnnotationStorage: "5Gi", contract.AnnotationClaim: token}), nil)
	if out := logged.String(); !strings.Contains(out, "cannot read the workspace claim") || strings.Contains(out, "0123456789abcdef") {
		t.Errorf("logged %q", out)
	}
}
