package provisione2e

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
)

// TestClaimsOnlyWhereWorkspacesLive guards the admin's consent: a
// Deployment asking for storage gets its claim in a namespace labeled for
// workspaces; in an unlabeled one (warned at admission) and in kube-system
// (where the webhook never runs, so the injected record is forged) nothing
// is created, until the admin labels the namespace.
func TestClaimsOnlyWhereWorkspacesLive(t *testing.T) {
	startInjector(t, "injector-0", 0)
	forged := workspace(t, "kube-system", "forged-"+rand.String(5), storage("5Gi", "premium"))
	forged.Annotations[contract.AnnotationInjected] = `{"version":"v2"}`
	if err := admin.Create(ctx, forged); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(ctx, forged) })
	unlabeled := namespaceLabeled(t, nil)
	c, warnings := warningClient(t)
	if err := c.Create(ctx, workspace(t, unlabeled, "flux", storage("1Gi", ""))); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(warnings.Take(), "\n"); !strings.Contains(got, "namespace "+unlabeled+" is not labeled "+contract.LabelWorkspaces) {
		t.Errorf("no warning that the namespace is not labeled: %q", got)
	}
	labeled := namespace(t)
	if err := admin.Create(ctx, workspace(t, labeled, "flux", storage("1Gi", ""))); err != nil {
		t.Fatal(err)
	}
	claim(t, labeled, "flux")
	if got := strings.Join(warnings.Take(), "\n"); strings.Contains(got, "is not labeled") {
		t.Errorf("a labeled namespace was warned about: %q", got)
	}
	if claimExists(t, unlabeled, "flux") {
		t.Error("a claim was created in a namespace not labeled for workspaces")
	}
	if claimExists(t, "kube-system", forged.Name) {
		t.Error("a forged injected record in kube-system got a claim")
	}

	// The admin's label is the switch: the waiting ask is served.
	var ns corev1.Namespace
	if err := admin.Get(ctx, client.ObjectKey{Name: unlabeled}, &ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels[contract.LabelWorkspaces] = contract.LabelWorkspacesEnabled
	if err := admin.Update(ctx, &ns); err != nil {
		t.Fatal(err)
	}
	claim(t, unlabeled, "flux")
	if claimExists(t, "kube-system", forged.Name) {
		t.Error("a forged injected record in kube-system got a claim")
	}
}

// TestStorageNeedsTheRightToCreateClaims guards the SubjectAccessReview on
// the requesting user: one who may create Deployments but not
// PersistentVolumeClaims is denied the storage annotation (the message
// names it), both on create and when an update adds it; without the
// annotation the same user is admitted.
func TestStorageNeedsTheRightToCreateClaims(t *testing.T) {
	startInjector(t, "injector-0", 0)
	ns := namespace(t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deployer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create", "get", "update"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deployer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	asAlice := rest.CopyConfig(cfg)
	asAlice.Impersonate = rest.ImpersonationConfig{UserName: "alice"}
	alice, err := client.New(asAlice, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	denied := func(err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "annotation "+contract.AnnotationStorage) ||
			!strings.Contains(err.Error(), "alice may not create PersistentVolumeClaims in namespace "+ns) {
			t.Errorf("want a denial naming the storage annotation and the missing right, got %v", err)
		}
	}
	denied(alice.Create(ctx, workspace(t, ns, "asks", storage("1Gi", ""))))

	plain := workspace(t, ns, "plain", nil)
	if err := alice.Create(ctx, plain); err != nil {
		t.Fatalf("alice may create a workspace without storage: %v", err)
	}
	var stored appsv1.Deployment
	if err := alice.Get(ctx, client.ObjectKeyFromObject(plain), &stored); err != nil {
		t.Fatal(err)
	}
	stored.Annotations[contract.AnnotationStorage] = "1Gi"
	denied(alice.Update(ctx, &stored))
	if claimExists(t, ns, "asks") || claimExists(t, ns, "plain") {
		t.Error("a claim was created for a user without the right to create it")
	}
}
