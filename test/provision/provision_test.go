package provisione2e

import (
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/provision"
	"github.com/angryninja/opencode-injector/test/testenv"
)

func storage(size, class string) map[string]string {
	a := map[string]string{contract.AnnotationStorage: size}
	if class != "" {
		a[contract.AnnotationStorageClass] = class
	}
	return a
}

// assertProvisioned checks a claim the injector created.
func assertProvisioned(t *testing.T, pvc *corev1.PersistentVolumeClaim, size, class string) {
	t.Helper()
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse(size)) != 0 {
		t.Errorf("claim %s asks %s, want %s", pvc.Name, got.String(), size)
	}
	switch {
	case class == "" && pvc.Spec.StorageClassName != nil:
		t.Errorf("claim %s names class %q, want the default (none named)", pvc.Name, *pvc.Spec.StorageClassName)
	case class != "" && (pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != class):
		t.Errorf("claim %s class %v, want %q", pvc.Name, pvc.Spec.StorageClassName, class)
	}
	if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("claim %s access modes %v, want ReadWriteOnce", pvc.Name, pvc.Spec.AccessModes)
	}
	// envtest runs no garbage collector: the absence of the reference
	// itself is what keeps the data when the Deployment goes.
	if len(pvc.OwnerReferences) != 0 {
		t.Errorf("claim %s has owner references %+v", pvc.Name, pvc.OwnerReferences)
	}
	if pvc.Labels[provision.LabelManagedBy] != provision.ManagedBy {
		t.Errorf("claim %s labels %v", pvc.Name, pvc.Labels)
	}
	if pvc.Annotations[provision.AnnotationFluxPrune] != provision.FluxPruneDisabled {
		t.Errorf("claim %s annotations %v: Flux could prune it", pvc.Name, pvc.Annotations)
	}
	if len(pvc.ManagedFields) == 0 || pvc.ManagedFields[0].Manager != provision.FieldManager || pvc.ManagedFields[0].Operation != metav1.ManagedFieldsOperationUpdate {
		t.Errorf("claim %s was not created by %s: %+v", pvc.Name, provision.FieldManager, pvc.ManagedFields)
	}
}

// TestClaimIsProvisionedAndOutlivesTheDeployment: a Deployment with the
// storage annotation gets its claim, of the asked size and class, without
// owner references; deleting the Deployment leaves the claim.
func TestClaimIsProvisionedAndOutlivesTheDeployment(t *testing.T) {
	startInjector(t, "injector-0", 0)
	ns := namespace(t)
	d := workspace(t, ns, "flux", storage("3Gi", "fast-ssd"))
	if err := admin.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	pvc := claim(t, ns, "flux")
	assertProvisioned(t, pvc, "3Gi", "fast-ssd")
	if e := waitEvent(t, ns, "flux", provision.ReasonProvisioned); !strings.Contains(e.Note, "on replica injector-0") {
		t.Errorf("the Event does not name the replica: %q", e.Note)
	}

	// The claim annotation names the claim; no class: the default one.
	named := workspace(t, ns, "ha", storage("1500Mi", ""))
	named.Annotations[contract.AnnotationClaim] = "ha-data"
	if err := admin.Create(ctx, named); err != nil {
		t.Fatal(err)
	}
	assertProvisioned(t, claim(t, ns, "ha-data"), "1500Mi", "")
	if claimExists(t, ns, "ha") {
		t.Error("a claim named after the Deployment was created although the claim annotation names another")
	}

	if err := admin.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Deployment to be gone", func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(d), &appsv1.Deployment{}))
	})
	// A later workspace's claim shows the controller has seen the deletion.
	later := workspace(t, ns, "later", storage("1Gi", ""))
	if err := admin.Create(ctx, later); err != nil {
		t.Fatal(err)
	}
	claim(t, ns, "later")
	after := &corev1.PersistentVolumeClaim{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(pvc), after); err != nil {
		t.Fatalf("the claim did not outlive its Deployment: %v", err)
	}
	if after.UID != pvc.UID || after.ResourceVersion != pvc.ResourceVersion || after.DeletionTimestamp != nil {
		t.Errorf("the claim changed after its Deployment was deleted: uid %s→%s, resourceVersion %s→%s, deletion %v",
			pvc.UID, after.UID, pvc.ResourceVersion, after.ResourceVersion, after.DeletionTimestamp)
	}
}

// TestExistingClaimIsUntouched: a claim that exists is never changed; one
// smaller than asked or of another class is reported (admission warning and
// Event), one the user expanded is not.
func TestExistingClaimIsUntouched(t *testing.T) {
	startInjector(t, "injector-0", 0)
	ns := namespace(t)
	small := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "small"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To("slow-hdd"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	expanded := small.DeepCopy()
	expanded.Name = "expanded"
	expanded.Spec.StorageClassName = ptr.To("fast-ssd")
	expanded.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("20Gi")
	for _, pvc := range []*corev1.PersistentVolumeClaim{small, expanded} {
		if err := admin.Create(ctx, pvc); err != nil {
			t.Fatal(err)
		}
	}

	c, w := warningClient(t)
	d := workspace(t, ns, "small", storage("5Gi", "fast-ssd"))
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	got := w.Take()
	for _, want := range []string{"PersistentVolumeClaim small is 1Gi, smaller than the 5Gi asked", `has storage class "slow-hdd", not the "fast-ssd" asked`} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no warning %q among %q", want, got)
		}
	}
	e := waitEvent(t, ns, "small", provision.ReasonMismatch)
	if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, "smaller than the 5Gi asked") || !strings.Contains(e.Note, "slow-hdd") {
		t.Errorf("mismatch Event: %s %q", e.Type, e.Note)
	}

	ok := workspace(t, ns, "expanded", storage("5Gi", "fast-ssd"))
	if err := c.Create(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if got := w.Take(); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "PersistentVolumeClaim") }) {
		t.Errorf("a claim expanded beyond the ask was warned about: %q", got)
	}

	// An update that does not change the ask stays quiet.
	stored := &appsv1.Deployment{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(d), stored); err != nil {
		t.Fatal(err)
	}
	stored.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "now"}
	if err := c.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if got := w.Take(); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "PersistentVolumeClaim") }) {
		t.Errorf("an update that keeps the ask repeated the claim warning: %q", got)
	}

	// A later workspace's claim shows the controller has handled both.
	if err := admin.Create(ctx, workspace(t, ns, "later", storage("1Gi", ""))); err != nil {
		t.Fatal(err)
	}
	claim(t, ns, "later")
	if evs := events(t, ns, "expanded", provision.ReasonMismatch); len(evs) != 0 {
		t.Errorf("a claim expanded beyond the ask was reported: %q", evs[0].Note)
	}
	for _, pvc := range []*corev1.PersistentVolumeClaim{small, expanded} {
		now := &corev1.PersistentVolumeClaim{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(pvc), now); err != nil {
			t.Fatal(err)
		}
		if now.ResourceVersion != pvc.ResourceVersion {
			t.Errorf("claim %s was changed: resourceVersion %s → %s, managedFields %+v", pvc.Name, pvc.ResourceVersion, now.ResourceVersion, now.ManagedFields)
		}
	}
}

// TestBadStorageIsDenied: an invalid size or class name is denied at
// admission, naming the annotation, and nothing is created.
func TestBadStorageIsDenied(t *testing.T) {
	startInjector(t, "injector-0", 0)
	ns := namespace(t)
	for i, c := range []struct {
		annotations map[string]string
		key         string
	}{
		{storage("lots", ""), contract.AnnotationStorage},
		{storage("-5Gi", ""), contract.AnnotationStorage},
		{storage("0", ""), contract.AnnotationStorage},
		{storage("1500m", ""), contract.AnnotationStorage},
		{storage("5Gi", "Fast_SSD"), contract.AnnotationStorageClass},
		{map[string]string{contract.AnnotationStorageClass: "fast-ssd"}, contract.AnnotationStorageClass},
	} {
		name := "bad-" + string(rune('a'+i))
		err := admin.Create(ctx, workspace(t, ns, name, c.annotations))
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "annotation "+c.key) {
			t.Errorf("%v: got %v, want a denial naming %s", c.annotations, err, c.key)
		}
		if claimExists(t, ns, name) {
			t.Errorf("%v: a claim was created", c.annotations)
		}
	}
}

// TestDryRunCreatesNothing: a dry-run create is answered (injected, with
// the claim warnings) and creates no claim.
func TestDryRunCreatesNothing(t *testing.T) {
	startInjector(t, "injector-0", 0)
	var cfgs admissionregistrationv1.MutatingWebhookConfigurationList
	if err := admin.List(ctx, &cfgs); err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs.Items {
		for _, wh := range c.Webhooks {
			if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
				t.Errorf("webhook %s declares side effects %v", wh.Name, wh.SideEffects)
			}
		}
	}
	ns := namespace(t)
	d := workspace(t, ns, "dry", storage("2Gi", ""))
	if err := admin.Create(ctx, d, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if len(d.Spec.Template.Spec.InitContainers) == 0 || d.Spec.Template.Spec.InitContainers[0].Name != contract.SeedContainerName {
		t.Errorf("the dry run was not injected: %+v", d.Spec.Template.Spec.InitContainers)
	}
	if err := admin.Create(ctx, workspace(t, ns, "real", storage("1Gi", ""))); err != nil {
		t.Fatal(err)
	}
	claim(t, ns, "real")
	if claimExists(t, ns, "dry") {
		t.Error("a dry-run create created a claim")
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dry"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry-run Deployment exists: %v", err)
	}
}

// TestOnlyTheLeaderCreates: with two injectors running, one holds the
// Lease and every claim is created by it; when it stops, the other takes
// the Lease and creates the next claim.
func TestOnlyTheLeaderCreates(t *testing.T) {
	a := startInjector(t, "injector-a", 0)
	eventually(t, "injector-a to hold the Lease", func() bool { return leaseHolder(t) == "injector-a" })
	b := startInjector(t, "injector-b", testenv.FreePort(t))
	ns := namespace(t)
	// A claim that exists and is smaller than asked: every replica whose
	// controller ran would report it, deterministically.
	small := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "small"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := admin.Create(ctx, small); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, workspace(t, ns, "small", storage("2Gi", ""))); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ns, "small", provision.ReasonMismatch)
	names := []string{"one", "two", "three"}
	for _, n := range names {
		if err := admin.Create(ctx, workspace(t, ns, n, storage("1Gi", ""))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		assertProvisioned(t, claim(t, ns, n), "1Gi", "")
		e := waitEvent(t, ns, n, provision.ReasonProvisioned)
		if evs := events(t, ns, n, provision.ReasonProvisioned); len(evs) != 1 || e.Series != nil {
			t.Errorf("claim %s: %d creation Events (series %+v), want 1", n, len(evs), e.Series)
		}
		if !strings.HasSuffix(e.Note, "on replica injector-a") {
			t.Errorf("claim %s was created by another replica than the leader injector-a: %q", n, e.Note)
		}
	}
	if h := leaseHolder(t); h != "injector-a" {
		t.Errorf("the Lease is held by %q, want injector-a", h)
	}
	// The election reports itself on the Lease (events.k8s.io, as the
	// injector's ServiceAccount may write them).
	eventually(t, "an Event on the Lease naming injector-a", func() bool {
		var list eventsv1.EventList
		if err := admin.List(ctx, &list, client.InNamespace(injectorNamespace)); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(list.Items, func(e eventsv1.Event) bool {
			return e.Regarding.Kind == "Lease" && strings.Contains(e.Note, "injector-a")
		})
	})
	for _, e := range events(t, ns, "small", provision.ReasonMismatch) {
		if !strings.HasSuffix(e.Note, "(replica injector-a)") {
			t.Errorf("a replica other than the leader reported the claim: %q", e.Note)
		}
	}

	// The standby serves the webhook too: every replica does.
	a.stop()
	pointWebhookAt(t, b.port)
	t.Cleanup(func() { pointWebhookAt(t, env.WebhookInstallOptions.LocalServingPort) })
	eventually(t, "injector-b to take the Lease", func() bool { return leaseHolder(t) == "injector-b" })
	if err := admin.Create(ctx, workspace(t, ns, "four", storage("1Gi", ""))); err != nil {
		t.Fatal(err)
	}
	assertProvisioned(t, claim(t, ns, "four"), "1Gi", "")
	if e := waitEvent(t, ns, "four", provision.ReasonProvisioned); !strings.HasSuffix(e.Note, "on replica injector-b") {
		t.Errorf("after the handover, claim four was created by: %q", e.Note)
	}
}

// TestInjectorRightsAreLeast: the ServiceAccount may not change or delete
// a claim, nor read Secrets.
func TestInjectorRightsAreLeast(t *testing.T) {
	ns := namespace(t)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := admin.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	inj, err := client.New(asInjector(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := inj.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
		t.Fatalf("the injector cannot read a claim: %v", err)
	}
	if err := inj.Update(ctx, pvc); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may update a claim: %v", err)
	}
	if err := inj.Delete(ctx, pvc); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may delete a claim: %v", err)
	}
	if err := inj.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may list Secrets: %v", err)
	}
	if err := inj.Update(ctx, workspace(t, ns, "x", nil)); !apierrors.IsForbidden(err) {
		t.Errorf("the injector may update Deployments: %v", err)
	}
}

// TestDeployElects: deploy/ runs two replicas that elect the provisioner's
// replica, in the namespace the downward API gives.
func TestDeployElects(t *testing.T) {
	docs, err := testenv.Render(root + "/deploy")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 || !slices.Contains(c.Args, "--leader-elect") {
			t.Errorf("deploy/ runs %d replicas with args %q: want two that elect", ptr.Deref(d.Spec.Replicas, 1), c.Args)
		}
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
		}) {
			t.Error("no POD_NAMESPACE from the downward API: the Lease has no namespace")
		}
		return
	}
	t.Fatal("deploy/ renders no Deployment")
}
