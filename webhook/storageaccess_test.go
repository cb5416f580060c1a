package webhook

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// accessReviewer stands for the API server's authorizer: it allows the
// users named, and records every review. test/provision asks the real one.
func accessReviewer(reviews *[]authorizationv1.SubjectAccessReviewSpec, allowed ...string) client.Writer {
	return fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, o client.Object, _ ...client.CreateOption) error {
			sar, ok := o.(*authorizationv1.SubjectAccessReview)
			if !ok {
				return errors.New("not a SubjectAccessReview")
			}
			*reviews = append(*reviews, sar.Spec)
			sar.Status.Allowed = slices.Contains(allowed, sar.Spec.User)
			return nil
		},
	}).Build()
}

func namespaces(labeled ...string) client.Reader {
	var objs []client.Object
	for _, n := range []string{"opencode", "other"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if slices.Contains(labeled, n) {
			ns.Labels = map[string]string{contract.LabelWorkspaces: contract.LabelWorkspacesEnabled}
		}
		objs = append(objs, ns)
	}
	return readerOf(objs...)
}

func TestStorageAdmission(t *testing.T) {
	ask := map[string]string{contract.AnnotationStorage: "5Gi"}
	alice := authenticationv1.UserInfo{Username: "alice", UID: "a-1", Groups: []string{"devs"}, Extra: map[string]authenticationv1.ExtraValue{"scope": {"x"}}}
	for _, c := range []struct {
		name       string
		op         admissionv1.Operation
		ann, old   map[string]string
		allowed    []string
		labeled    []string
		reviewed   bool
		denied     bool
		wantWarned bool
		// oldUnlabeled: the stored object was not a workspace yet.
		oldUnlabeled bool
	}{
		{"a user who may create claims, in a labeled namespace", admissionv1.Create, ask, nil, []string{"alice"}, []string{"opencode"}, true, false, false, false},
		{"a user who may not create claims is denied", admissionv1.Create, ask, nil, nil, []string{"opencode"}, true, true, false, false},
		{"an update that adds the ask is reviewed", admissionv1.Update, ask, map[string]string{}, nil, []string{"opencode"}, true, true, false, false},
		{"an update that keeps the ask is not reviewed again", admissionv1.Update, ask, ask, nil, []string{"opencode"}, false, false, false, false},
		{"adding the label to a Deployment that carried the ask unchecked is reviewed", admissionv1.Update, ask, ask, nil, []string{"opencode"}, true, true, false, true},
		{"no ask, no review", admissionv1.Create, map[string]string{}, nil, nil, []string{"opencode"}, false, false, false, false},
		{"an unlabeled namespace is warned about", admissionv1.Create, ask, nil, []string{"alice"}, []string{"other"}, true, false, true, false},
		{"the right is checked in an unlabeled namespace too", admissionv1.Create, ask, nil, nil, nil, true, true, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reviews []authorizationv1.SubjectAccessReviewSpec
			h := &Handler{Settings: testSettings(), Access: accessReviewer(&reviews, c.allowed...), Namespaces: namespaces(c.labeled...)}
			var old *metav1.ObjectMeta
			if c.old != nil {
				old = &metav1.ObjectMeta{Name: "ws", Annotations: c.old}
				if !c.oldUnlabeled {
					old.Labels = map[string]string{contract.LabelInject: contract.LabelInjectEnabled}
				}
			}
			warnings, denial, err := h.storageAdmission(context.Background(), c.op, alice, asking(c.ann), old)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(reviews) > 0; got != c.reviewed {
				t.Fatalf("reviewed=%v, want %v", got, c.reviewed)
			}
			if c.reviewed {
				want := authorizationv1.SubjectAccessReviewSpec{
					User: "alice", UID: "a-1", Groups: []string{"devs"}, Extra: map[string]authorizationv1.ExtraValue{"scope": {"x"}},
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "opencode", Verb: "create", Resource: "persistentvolumeclaims"},
				}
				if got := reviews[0]; got.User != want.User || got.UID != want.UID || !slices.Equal(got.Groups, want.Groups) ||
					!slices.Equal(got.Extra["scope"], want.Extra["scope"]) || *got.ResourceAttributes != *want.ResourceAttributes {
					t.Errorf("reviewed %+v, want %+v", got, want)
				}
			}
			if got := denial != ""; got != c.denied {
				t.Fatalf("denied=%v (%q), want %v", got, denial, c.denied)
			}
			if c.denied && !strings.Contains(denial, "annotation "+contract.AnnotationStorage+": user alice may not create PersistentVolumeClaims in namespace opencode") {
				t.Errorf("the denial does not name the annotation and the right: %q", denial)
			}
			if got := len(warnings) > 0; got != c.wantWarned {
				t.Fatalf("warnings %q, want warned=%v", warnings, c.wantWarned)
			}
			if c.wantWarned && !strings.Contains(warnings[0], "namespace opencode is not labeled "+contract.LabelWorkspaces) {
				t.Errorf("the warning does not name the namespace and the label: %q", warnings[0])
			}
		})
	}
}

// A review that cannot be made fails closed.
func TestStorageAdmissionFailsClosed(t *testing.T) {
	broken := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return errors.New("connection refused")
		},
	}).Build()
	h := &Handler{Settings: testSettings(), Access: broken, Namespaces: namespaces("opencode")}
	if _, _, err := h.storageAdmission(context.Background(), admissionv1.Create, authenticationv1.UserInfo{Username: "alice"}, asking(map[string]string{contract.AnnotationStorage: "5Gi"}), nil); err == nil {
		t.Error("a failed SubjectAccessReview admitted the ask")
	}
	h.Access, h.Namespaces = accessReviewer(new([]authorizationv1.SubjectAccessReviewSpec), "alice"), readerOf()
	if _, _, err := h.storageAdmission(context.Background(), admissionv1.Create, authenticationv1.UserInfo{Username: "alice"}, asking(map[string]string{contract.AnnotationStorage: "5Gi"}), nil); err == nil {
		t.Error("an unreadable namespace admitted the ask without its warning")
	}
}

// Handle refuses the Deployment when the storage check denies it: no
// patch, code 403, the denial counted.
func TestHandleDeniesAStorageAskWithoutTheRight(t *testing.T) {
	d := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	d.Annotations[contract.AnnotationStorage] = "5Gi"
	raw := injectiontest.MustJSON(t, d)
	h := &Handler{Settings: testSettings(), Access: accessReviewer(new([]authorizationv1.SubjectAccessReviewSpec)), Namespaces: namespaces("opencode")}
	before := outcomeCount(OutcomeDenied)
	resp := h.Handle(context.Background(), request(admissionv1.Create, raw, nil))
	if resp.Allowed || resp.Result.Code != http.StatusForbidden || len(resp.Patches) != 0 || !strings.Contains(resp.Result.Message, "may not create PersistentVolumeClaims") {
		t.Errorf("allowed=%v code %d, %d patch operations: %s", resp.Allowed, resp.Result.Code, len(resp.Patches), resp.Result.Message)
	}
	if outcomeCount(OutcomeDenied) != before+1 {
		t.Error("the denial was not counted")
	}
}

// Handle runs the storage check with what the review holds: the stored
// object (an unchanged ask is not reviewed again), the operation (an
// update that adds the ask is reviewed), a review that cannot be made
// (fails closed), and passes on the check's and the claim's warnings. Each
// case names the line of handler.go it guards.
func TestHandleGuardsTheStorageAsk(t *testing.T) {
	plain := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	user := plain.DeepCopy()
	user.Annotations[contract.AnnotationStorage] = "5Gi"
	storedAsk, _, err := injection.Mutate(user, nil, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	unrelatedEdit := storedAsk.DeepCopy()
	unrelatedEdit.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "now"}
	storedPlain, _, err := injection.Mutate(plain, nil, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	addsAsk := storedPlain.DeepCopy()
	addsAsk.Annotations[contract.AnnotationStorage] = "5Gi"
	broken := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return errors.New("connection refused")
		},
	}).Build()
	smallClaim := claimOf(contract.ClaimName(user.Annotations, user.Name), "1Gi", "")
	for _, c := range []struct {
		name        string
		op          admissionv1.Operation
		object, old *appsv1.Deployment
		access      client.Writer // nil: the recording reviewer, allowing alice only
		labeled     []string
		claims      client.Reader
		username    string
		code        int32 // 0: allowed
		reviews     int
		warning     string
	}{
		// W1: the stored object reaches the check; bob lacks the right.
		{name: "an unrelated edit of a workspace asking for storage needs no claim right", op: admissionv1.Update, object: unrelatedEdit, old: storedAsk, labeled: []string{"opencode"}, username: "bob"},
		// W12: the check runs on updates too.
		{name: "an update that adds the ask is denied to a user without the right", op: admissionv1.Update, object: addsAsk, old: storedPlain, labeled: []string{"opencode"}, username: "bob", code: http.StatusForbidden, reviews: 1},
		// W2: a review error fails closed.
		{name: "a review that cannot be made fails closed", op: admissionv1.Create, object: user, access: broken, labeled: []string{"opencode"}, username: "alice", code: http.StatusInternalServerError},
		// W3: the check's warning reaches the answer.
		{name: "an unlabeled namespace is warned about", op: admissionv1.Create, object: user, username: "alice", reviews: 1, warning: "namespace opencode is not labeled " + contract.LabelWorkspaces},
		// W4: the claim's warning reaches the answer.
		{name: "a claim smaller than asked is warned about", op: admissionv1.Create, object: user, labeled: []string{"opencode"}, claims: readerOf(smallClaim), username: "alice", reviews: 1, warning: "smaller than the 5Gi asked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reviews []authorizationv1.SubjectAccessReviewSpec
			access := c.access
			if access == nil {
				access = accessReviewer(&reviews, "alice")
			}
			h := &Handler{Settings: testSettings(), Access: access, Namespaces: namespaces(c.labeled...), Claims: c.claims}
			var old []byte
			if c.old != nil {
				old = injectiontest.MustJSON(t, c.old)
			}
			req := request(c.op, injectiontest.MustJSON(t, c.object), old)
			req.UserInfo = authenticationv1.UserInfo{Username: c.username}
			resp := h.Handle(context.Background(), req)
			if c.code == 0 && !resp.Allowed || c.code != 0 && (resp.Allowed || resp.Result.Code != c.code) {
				t.Fatalf("allowed=%v %v, want code %d (0: allowed)", resp.Allowed, resp.Result, c.code)
			}
			if len(reviews) != c.reviews {
				t.Errorf("%d SubjectAccessReviews, want %d", len(reviews), c.reviews)
			}
			if c.warning != "" && !slices.ContainsFunc(resp.Warnings, func(w string) bool { return strings.Contains(w, c.warning) }) {
				t.Errorf("warnings %q, want one saying %q", resp.Warnings, c.warning)
			}
		})
	}
}

// A Deployment being deleted is not reviewed (storageaccess.go's deletion
// test): its finalizers' last updates must pass whoever makes them.
func TestStorageAdmissionLeavesADeletionAlone(t *testing.T) {
	var reviews []authorizationv1.SubjectAccessReviewSpec
	h := &Handler{Settings: testSettings(), Access: accessReviewer(&reviews), Namespaces: namespaces("opencode")}
	d := asking(map[string]string{contract.AnnotationStorage: "5Gi"})
	d.DeletionTimestamp = &metav1.Time{}
	_, denial, err := h.storageAdmission(context.Background(), admissionv1.Update, authenticationv1.UserInfo{Username: "bob"}, d, &metav1.ObjectMeta{})
	if err != nil || denial != "" || len(reviews) != 0 {
		t.Errorf("a Deployment being deleted: %d reviews, denial %q, err %v", len(reviews), denial, err)
	}
}
