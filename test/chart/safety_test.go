package chart

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/hack/chart/render"
)

// TestBadValuesAreRefused: values that would render broken, silently
// truncated or unsafe output are refused by the schema or a template's
// fail, with an error naming the value to fix.
func TestBadValuesAreRefused(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for _, c := range []struct {
		name   string
		values map[string]any
		field  string
	}{
		{"policy on without CIDRs", at("networkPolicy.enabled", true), "networkPolicy.controlPlaneCIDRs"},
		{"metrics open to everyone", merge(allOn, at("networkPolicy.metricsFrom", []any{})), "metricsFrom"},
		{"priority class breaks YAML", at("priorityClassName", "a: b"), "priorityClassName"},
		{"seed image becomes a map", at("injection.seedImage", "reg/x: y"), "seedImage"},
		{"tag loses a comment", at("image.tag", "v1 #x"), "tag"},
		{"PDB budget not a number", at("podDisruptionBudget.maxUnavailable", "abc"), "maxUnavailable"},
		{"PDB budget zero", at("podDisruptionBudget.maxUnavailable", 0), "maxUnavailable"},
		{"extraArgs overrides a chart flag", at("extraArgs", []any{"--allowed-git-hosts=evil.example"}), "injection.allowedGitHosts"},
		{"extraArgs overrides a fixed flag", at("extraArgs", []any{"--port=8443"}), "--port"},
		{"renewal never ends", at("certManager.renewBefore", "2160h"), "certManager.renewBefore"},
		{"renewal in mixed units", map[string]any{"certManager": map[string]any{"duration": "1h", "renewBefore": "59m60s"}}, "certManager.renewBefore"},
		{"a duration the chart cannot compare", map[string]any{"certManager": map[string]any{"duration": "1.5h", "renewBefore": "1m"}}, "duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render.Template(dir, c.values)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("%v: got %v, want an error naming %s", c.values, err, c.field)
			}
		})
	}
}

// TestGoodValuesStillRender: the neighbours of the refused values pass.
func TestGoodValuesStillRender(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for _, values := range []map[string]any{
		merge(allOn, at("networkPolicy.controlPlaneCIDRs", []any{"10.0.0.0/24", "10.1.0.0/24", "fd00::/64"})),
		at("image.tag", "v1.2.3-rc.1_build"),
		at("injection.seedImage", "registry.example.org:5000/seed:v1@sha256:"+strings.Repeat("ab", 32)),
		at("podDisruptionBudget.maxUnavailable", "50%"),
		at("extraArgs", []any{"--metrics-secure=false", "--leader-elect-lease-duration=30s"}),
		map[string]any{"certManager": map[string]any{"duration": "1h30m", "renewBefore": "1h29m59s"}},
	} {
		if _, err := render.Template(dir, values); err != nil {
			t.Errorf("%v: %v", values, err)
		}
	}
}

// pdbAllowsADrain: with every replica healthy, the budget the chart renders
// lets the eviction API evict one (the disruption controller's arithmetic).
func TestPDBAllowsADrain(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for _, replicas := range []int{1, 2, 3} {
		out, err := render.Template(dir, at("replicaCount", replicas))
		if err != nil {
			t.Fatal(err)
		}
		var pdb struct {
			Spec map[string]any `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(out["poddisruptionbudget.yaml"][0]), &pdb); err != nil {
			t.Fatal(err)
		}
		if _, ok := pdb.Spec["minAvailable"]; ok {
			t.Errorf("replicas %d: the budget sets minAvailable, which blocks every drain of a single replica", replicas)
		}
		if got := pdb.Spec["maxUnavailable"]; got != float64(1) {
			t.Errorf("replicas %d: maxUnavailable %v, want 1", replicas, got)
		}
		if got := pdb.Spec["unhealthyPodEvictionPolicy"]; got != "AlwaysAllow" {
			t.Errorf("replicas %d: unhealthyPodEvictionPolicy %v, want AlwaysAllow (an unready replica never holds up a drain)", replicas, got)
		}
	}
}
