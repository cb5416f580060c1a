package provision

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
)

func pvc(request, capacity string, class *string) *corev1.PersistentVolumeClaim {
	p := &corev1.PersistentVolumeClaim{}
	p.Name = "data"
	p.Spec.StorageClassName = class
	if request != "" {
		p.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(request)}
	}
	if capacity != "" {
		p.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(capacity)}
	}
	return p
}

func TestMismatch(t *testing.T) {
	want := contract.Storage{Size: resource.MustParse("5Gi"), Class: "fast"}
	for _, c := range []struct {
		name  string
		claim *corev1.PersistentVolumeClaim
		want  []string // substrings, one per problem
	}{
		{"as asked", pvc("5Gi", "", ptr.To("fast")), nil},
		{"expanded later", pvc("20Gi", "20Gi", ptr.To("fast")), nil},
		{"being expanded: request above capacity", pvc("10Gi", "5Gi", ptr.To("fast")), nil},
		{"provisioner rounded up: capacity above request", pvc("4Gi", "8Gi", ptr.To("fast")), nil},
		{"smaller", pvc("1Gi", "1Gi", ptr.To("fast")), []string{"is 1Gi, smaller than the 5Gi asked"}},
		{"no size at all", pvc("", "", ptr.To("fast")), []string{"is of no size"}},
		{"other class", pvc("5Gi", "", ptr.To("slow")), []string{`has storage class "slow", not the "fast"`}},
		{"no class named", pvc("5Gi", "", nil), []string{`has storage class "", not the "fast"`}},
		{"both", pvc("1Gi", "", ptr.To("slow")), []string{"smaller", "storage class"}},
	} {
		got := Mismatch(c.claim, want)
		if len(got) != len(c.want) {
			t.Errorf("%s: %q, want %d problems", c.name, got, len(c.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], c.want[i]) {
				t.Errorf("%s: %q does not say %q", c.name, got[i], c.want[i])
			}
		}
	}
	// Without a named class any class is fine: the default class is the
	// cluster's to know.
	if got := Mismatch(pvc("5Gi", "", ptr.To("whatever")), contract.Storage{Size: resource.MustParse("5Gi")}); len(got) != 0 {
		t.Errorf("no class asked: %q", got)
	}
}

func TestNewClaim(t *testing.T) {
	c := NewClaim("ns", "data", contract.Storage{Size: resource.MustParse("5Gi")})
	if c.OwnerReferences != nil || c.Spec.StorageClassName != nil || c.Labels[LabelManagedBy] != ManagedBy ||
		c.Annotations[AnnotationFluxPrune] != FluxPruneDisabled || len(c.Spec.AccessModes) != 1 || c.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("%+v", c)
	}
	if c := NewClaim("ns", "data", contract.Storage{Size: resource.MustParse("5Gi"), Class: "fast"}); c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != "fast" {
		t.Errorf("class %v", c.Spec.StorageClassName)
	}
}
