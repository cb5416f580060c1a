package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/hack/chart/render"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// TestFluxHelmReleaseValuesRender: the Flux example's HelmRelease values,
// substituted with their defaults and with every switch a cluster sets,
// are values the chart accepts and renders as meant.
func TestFluxHelmReleaseValuesRender(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "flux", "kubernetes", "apps", "opencode-system", "opencode-injector", "app", "helmrelease.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		vars    map[string]string
		want    map[string]bool // template file: rendered or not
		wantErr string          // the field a refusal names
	}{
		"defaults": {nil, map[string]bool{"networkpolicy.yaml": false, "servicemonitor.yaml": false, "deployment.yaml": true}, ""},
		"cluster settings": {map[string]string{"OPENCODE_INJECTOR_NETWORK_POLICY": "true", "OPENCODE_INJECTOR_MONITORING": "true", "CONTROL_PLANE_CIDR": "10.10.0.0/24"},
			map[string]bool{"networkpolicy.yaml": true, "servicemonitor.yaml": true, "prometheusrule.yaml": true, "dashboard.yaml": true}, ""},
		"dual-stack": {map[string]string{"OPENCODE_INJECTOR_NETWORK_POLICY": "true", "CONTROL_PLANE_CIDR": "10.10.0.0/24, fd00::/64"},
			map[string]bool{"networkpolicy.yaml": true}, ""},
		// A guessed default would lock every labeled Deployment out.
		"policy on, no CIDR": {map[string]string{"OPENCODE_INJECTOR_NETWORK_POLICY": "true"}, nil, "networkPolicy.controlPlaneCIDRs"},
	} {
		t.Run(name, func(t *testing.T) {
			text, missing := testenv.Substitute(string(b), c.vars)
			if len(missing) > 0 {
				t.Fatalf("variables without a default: %v", missing)
			}
			var hr struct {
				Spec struct {
					Values map[string]any `json:"values"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(text), &hr); err != nil {
				t.Fatal(err)
			}
			out, err := render.Template(render.ChartDir(root), hr.Spec.Values)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %v, want an error naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for file, want := range c.want {
				if _, ok := out[file]; ok != want {
					t.Errorf("%s rendered: %v, want %v", file, ok, want)
				}
			}
			for _, cidr := range strings.Split(c.vars["CONTROL_PLANE_CIDR"], ",") {
				if cidr = strings.TrimSpace(cidr); cidr != "" && !hasLine(strings.Join(out["networkpolicy.yaml"], ""), "cidr: "+cidr) {
					t.Errorf("CONTROL_PLANE_CIDR's %s does not reach the NetworkPolicy", cidr)
				}
			}
		})
	}
}

// TestChartOwnsNoNamespace: the release never declares its namespace
// (the cluster's namespace.yaml, or deploy/'s, owns it).
func TestChartOwnsNoNamespace(t *testing.T) {
	out, err := render.Template(render.ChartDir(repoRoot(t)), allOn)
	if err != nil {
		t.Fatal(err)
	}
	for file, docs := range out {
		for _, doc := range docs {
			if strings.Contains(doc, "\nkind: Namespace\n") || strings.HasPrefix(doc, "kind: Namespace\n") {
				t.Errorf("%s declares a Namespace", file)
			}
		}
	}
}
