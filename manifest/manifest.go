// Package manifest reads and writes Kubernetes manifests: one Deployment
// document, or the first Deployment of a multi-document stream.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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

// SplitYAML splits a multi-document manifest into its non-empty documents.
func SplitYAML(manifest []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// FirstDeployment decodes the first Deployment document of a
// multi-document manifest, such as a rendered app-template chart.
func FirstDeployment(manifest []byte) (*appsv1.Deployment, error) {
	docs, err := SplitYAML(manifest)
	if err != nil {
		return nil, err
	}
	for _, doc := range docs {
		var head metav1.TypeMeta
		if yaml.Unmarshal(doc, &head) == nil && head.Kind == "Deployment" {
			return DecodeYAML(doc)
		}
	}
	return nil, errors.New("no Deployment in the manifest")
}
