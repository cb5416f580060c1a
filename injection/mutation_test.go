package injection

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// decodeStored reads of a stored object exactly what a full decoding
// holds of its metadata, strategy and pod template, and nothing of its
// managedFields, status or other spec fields; an UPDATE reviewed with it
// gets the same patch and warnings as with a stored object that has none
// of those.
func TestDecodeStoredReadsWhatTheInjectionReads(t *testing.T) {
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			stored, _, err := Mutate(in, nil, testSettings())
			if err != nil {
				t.Skip("denied")
			}
			bare := stored.DeepCopy()
			full := stored.DeepCopy()
			full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "helm-controller", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "apps/v1",
				Time: ptr.To(metav1.NewTime(time.Unix(1, 0))), FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}}}
			full.Status = appsv1.DeploymentStatus{Replicas: 1, ObservedGeneration: 3}
			full.Spec.Replicas, full.Spec.RevisionHistoryLimit = ptr.To[int32](1), ptr.To[int32](3)
			full.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}

			got, err := decodeStored(injectiontest.MustJSON(t, full))
			if err != nil {
				t.Fatal(err)
			}
			want := &appsv1.Deployment{TypeMeta: full.TypeMeta, ObjectMeta: *full.ObjectMeta.DeepCopy(),
				Spec: appsv1.DeploymentSpec{Strategy: full.Spec.Strategy, Template: full.Spec.Template}}
			want.ManagedFields = nil
			if diff := cmp.Diff(injectiontest.Decode(t, injectiontest.MustJSON(t, want)), got); diff != "" {
				t.Fatalf("decodeStored (-want +got):\n%s", diff)
			}

			request := bare.DeepCopy() // a changing UPDATE: the user adds an env entry
			request.Spec.Template.Spec.Containers[0].Env = append(request.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "USER_EDIT", Value: "x"})
			raw := injectiontest.MustJSON(t, request)
			withAll, err := MutateJSON(raw, injectiontest.MustJSON(t, full), testSettings())
			if err != nil {
				t.Fatal(err)
			}
			withNone, err := MutateJSON(raw, injectiontest.MustJSON(t, bare), testSettings())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(withAll.Patch, withNone.Patch) || !reflect.DeepEqual(withAll.Warnings, withNone.Warnings) || (withAll.Denied == nil) != (withNone.Denied == nil) {
				t.Fatalf("the stored object's managedFields, status or spec changed the review:\n%v %v\n%v %v", withAll.Patch, withAll.Warnings, withNone.Patch, withNone.Warnings)
			}
		})
	}
}
