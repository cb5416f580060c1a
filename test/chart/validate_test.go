package chart

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/hack/chart/render"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// TestRenderedValidatesServerSide applies everything the chart renders,
// with its defaults, with every optional part on and with an existing
// ClusterIssuer, server-side and dry-run, to a real kube-apiserver holding
// the CRDs of cert-manager and prometheus-operator: the API server's own
// schemas, not a copy of them, judge the output.
func TestRenderedValidatesServerSide(t *testing.T) {
	root := repoRoot(t)
	crds, err := testenv.CRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	_, cfg := testenv.APIServer(t, root, crds)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: render.Namespace}}); err != nil {
		t.Fatal(err)
	}
	for name, values := range map[string]map[string]any{
		"defaults": nil,
		"all on":   allOn,
		"existing issuer": merge(allOn, map[string]any{
			"certManager": map[string]any{"issuerRef": map[string]any{"kind": "ClusterIssuer", "name": "internal-ca", "group": "cert-manager.io"}},
			"webhook":     map[string]any{"failurePolicy": "Ignore", "namespaceSelector": map[string]any{"matchExpressions": []any{}}},
		}),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := render.Template(render.ChartDir(root), values)
			if err != nil {
				t.Fatal(err)
			}
			applied := 0
			for file, docs := range out {
				for _, doc := range docs {
					u := &unstructured.Unstructured{}
					if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("helm"), client.ForceOwnership, client.DryRunAll)
					if err != nil {
						t.Errorf("%s: %s %s: %v", file, u.GetKind(), u.GetName(), err)
					}
					applied++
				}
			}
			if applied < 15 {
				t.Errorf("only %d objects rendered", applied)
			}
			if name != "defaults" && !strings.Contains(strings.Join(out["servicemonitor.yaml"], ""), "authorization:") {
				t.Error("the ServiceMonitor does not authenticate with authorization")
			}
		})
	}
}
