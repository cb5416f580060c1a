package webhook

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// DecodeYAML reads one Deployment document.
func DecodeYAML(b []byte) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode Deployment: %w", err)
	}
	return &d, nil
}

// EncodeYAML writes d as a manifest: keys sorted, without the empty status
// and creationTimestamp a typed object always carries.
func EncodeYAML(d *appsv1.Deployment) ([]byte, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		return nil, fmt.Errorf("encode Deployment: %w", err)
	}
	if st, ok := u["status"].(map[string]any); ok && len(st) == 0 {
		delete(u, "status")
	}
	for _, f := range [][]string{{"metadata", "creationTimestamp"}, {"spec", "template", "metadata", "creationTimestamp"}} {
		if v, found, _ := unstructured.NestedFieldNoCopy(u, f...); found && v == nil {
			unstructured.RemoveNestedField(u, f...)
		}
	}
	return yaml.Marshal(u)
}
