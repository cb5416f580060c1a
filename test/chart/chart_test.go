// Package chart tests the injector's Helm chart with Helm's own Go
// packages: deploy/ is its rendered defaults, it lints, its schema refuses
// bad values, every value reaches the output, and what it renders is
// accepted by a real API server.
package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/angryninja/opencode-injector/hack/chart/render"
	"github.com/angryninja/opencode-injector/test/testenv"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestDeployIsTheChartsDefaults: deploy/ is exactly what hack/chart writes
// from the chart; run `go run ./hack/chart` after changing the chart.
func TestDeployIsTheChartsDefaults(t *testing.T) {
	root := repoRoot(t)
	want, err := render.Deploy(render.ChartDir(root))
	if err != nil {
		t.Fatal(err)
	}
	have, err := render.Generated(root)
	if err != nil {
		t.Fatal(err)
	}
	for rel, b := range want {
		if got, ok := have[rel]; !ok {
			t.Errorf("deploy/%s is missing: run go run ./hack/chart", rel)
		} else if !bytes.Equal(got, b) {
			t.Errorf("deploy/%s differs from the chart (run go run ./hack/chart):\n%s", rel, cmp.Diff(string(b), string(got)))
		}
	}
	for rel := range have {
		if _, ok := want[rel]; !ok {
			t.Errorf("deploy/%s is not rendered from the chart: move it into the chart, deploy/flux or deploy/opencode-image", rel)
		}
	}
}

// allOn switches on every optional part of the chart.
var allOn = map[string]any{
	"networkPolicy": map[string]any{"enabled": true, "controlPlaneCIDRs": []any{"192.168.1.0/24"}},
	"monitoring": map[string]any{
		"serviceMonitor": map[string]any{"enabled": true},
		"prometheusRule": map[string]any{"enabled": true},
		"dashboard":      map[string]any{"enabled": true},
	},
}

// TestChartLints: `helm lint --strict` finds nothing, with the defaults,
// with every optional part on, and with an existing ClusterIssuer.
func TestChartLints(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for name, values := range map[string]map[string]any{
		"defaults": nil,
		"all on":   allOn,
		"issuer":   {"certManager": map[string]any{"issuerRef": map[string]any{"kind": "ClusterIssuer", "name": "internal-ca"}}},
	} {
		for _, err := range render.Lint(dir, values) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestLintCatchesABrokenChart: the lint really reads templates.
func TestLintCatchesABrokenChart(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(render.ChartDir(repoRoot(t)))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "broken.yaml"), []byte("kind: {{ .Values.nope.nope }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(render.Lint(dir, nil)) == 0 {
		t.Error("helm lint passed a template that cannot render")
	}
}

// TestSchemaRefusesBadValues: values.schema.json names the field at fault.
func TestSchemaRefusesBadValues(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for _, c := range []struct {
		values map[string]any
		field  string
	}{
		{map[string]any{"replicaCount": 0}, "replicaCount"},
		{map[string]any{"replicas": 2}, "replicas"},
		{map[string]any{"image": map[string]any{"digest": "sha256:abc"}}, "digest"},
		{map[string]any{"injection": map[string]any{"allowedGitHosts": []any{}}}, "allowedGitHosts"},
		{map[string]any{"injection": map[string]any{"allowedGitHosts": []any{"https://git.example.org"}}}, "allowedGitHosts"},
		{map[string]any{"injection": map[string]any{"defaultLimits": "cpu 500m"}}, "defaultLimits"},
		{map[string]any{"webhook": map[string]any{"failurePolicy": "fail"}}, "failurePolicy"},
		{map[string]any{"scaleGuard": map[string]any{"timeoutSeconds": 60}}, "timeoutSeconds"},
		{map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"kind": "ClusterIssuer"}}}, "issuerRef"},
		{map[string]any{"networkPolicy": map[string]any{"controlPlaneCIDRs": []any{"192.168.1.1"}}}, "controlPlaneCIDRs"},
		{map[string]any{"logLevel": "verbose"}, "logLevel"},
	} {
		_, err := render.Template(dir, c.values)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: got %v, want an error naming %s", c.values, err, c.field)
		}
	}
}

// at builds {a: {b: v}} from "a.b" and v.
func at(path string, v any) map[string]any {
	keys := strings.Split(path, ".")
	m := map[string]any{keys[len(keys)-1]: v}
	for i := len(keys) - 2; i >= 0; i-- {
		m = map[string]any{keys[i]: m}
	}
	return m
}

// merge lays b over a, recursively.
func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		am, aok := out[k].(map[string]any)
		bm, bok := v.(map[string]any)
		if aok && bok {
			out[k] = merge(am, bm)
		} else {
			out[k] = v
		}
	}
	return out
}

// wired is one value changed from its default, over base, and a line that
// must then appear in a template's output (and not before).
type wired struct {
	path  string
	value any
	base  map[string]any
	file  string
	want  string
}

var wiring = []wired{
	{"replicaCount", 3, nil, "deployment.yaml", "replicas: 3"},
	{"image.repository", "registry.example.org/mirror/opencode-injector", nil, "deployment.yaml", "image: registry.example.org/mirror/opencode-injector:v0.1.0"},
	{"image.tag", "v9.9.9", nil, "deployment.yaml", "image: ghcr.io/angryninja/opencode-injector:v9.9.9"},
	{"image.digest", "sha256:" + strings.Repeat("ab", 32), nil, "deployment.yaml", "image: ghcr.io/angryninja/opencode-injector:v0.1.0@sha256:" + strings.Repeat("ab", 32)},
	{"image.pullPolicy", "Always", nil, "deployment.yaml", "imagePullPolicy: Always"},
	{"imagePullSecrets", []any{map[string]any{"name": "ghcr"}}, nil, "deployment.yaml", "- name: ghcr"},
	{"injection.allowedGitHosts", []any{"github.com", "git.example.org:3000"}, nil, "deployment.yaml", "- --allowed-git-hosts=github.com,git.example.org:3000"},
	{"injection.defaultSecret", "workspace-secret", nil, "deployment.yaml", "- --default-secret=workspace-secret"},
	{"injection.defaultRequests", "cpu=50m,memory=128Mi", nil, "deployment.yaml", "- --default-requests=cpu=50m,memory=128Mi"},
	{"injection.defaultLimits", "cpu=2,memory=2Gi", nil, "deployment.yaml", "- --default-limits=cpu=2,memory=2Gi"},
	{"injection.seedImage", "registry.example.org/seed@sha256:" + strings.Repeat("cd", 32), nil, "deployment.yaml", "- --seed-image=registry.example.org/seed@sha256:" + strings.Repeat("cd", 32)},
	{"logLevel", "debug", nil, "deployment.yaml", "- --zap-log-level=debug"},
	{"extraArgs", []any{"--metrics-secure=false"}, nil, "deployment.yaml", "- --metrics-secure=false"},
	{"resources", map[string]any{"requests": map[string]any{"cpu": "25m"}}, nil, "deployment.yaml", "cpu: 25m"},
	{"priorityClassName", "homelab-critical", nil, "deployment.yaml", "priorityClassName: homelab-critical"},
	{"nodeSelector", map[string]any{"kubernetes.io/arch": "arm64"}, nil, "deployment.yaml", "kubernetes.io/arch: arm64"},
	{"tolerations", []any{map[string]any{"key": "control-plane", "operator": "Exists"}}, nil, "deployment.yaml", "- key: control-plane"},
	{"affinity", map[string]any{"nodeAffinity": map[string]any{}}, nil, "deployment.yaml", "nodeAffinity: {}"},
	{"topologySpreadConstraints", []any{map[string]any{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}}, nil, "deployment.yaml", "topologyKey: topology.kubernetes.io/zone"},
	{"podAnnotations", map[string]any{"reloader.stakater.com/auto": "true"}, nil, "deployment.yaml", `reloader.stakater.com/auto: "true"`},
	{"podLabels", map[string]any{"team": "platform"}, nil, "deployment.yaml", "team: platform"},
	{"webhook.failurePolicy", "Ignore", nil, "mutatingwebhookconfiguration.yaml", "failurePolicy: Ignore"},
	{"webhook.timeoutSeconds", 10, nil, "mutatingwebhookconfiguration.yaml", "timeoutSeconds: 10"},
	{"webhook.namespaceSelector", map[string]any{"matchLabels": map[string]any{"opencode.angryninja.cloud/workspaces": "true"}}, nil, "mutatingwebhookconfiguration.yaml", `opencode.angryninja.cloud/workspaces: "true"`},
	{"scaleGuard.failurePolicy", "Ignore", nil, "validatingwebhookconfiguration.yaml", "failurePolicy: Ignore"},
	{"scaleGuard.timeoutSeconds", 3, nil, "validatingwebhookconfiguration.yaml", "timeoutSeconds: 3"},
	{"scaleGuard.namespaceSelector", map[string]any{"matchLabels": map[string]any{"workspaces": "yes"}}, nil, "validatingwebhookconfiguration.yaml", "workspaces: \"yes\""},
	{"podDisruptionBudget.enabled", false, nil, "poddisruptionbudget.yaml", ""},
	{"podDisruptionBudget.maxUnavailable", "50%", nil, "poddisruptionbudget.yaml", "maxUnavailable: 50%"},
	{"certManager.issuerRef", map[string]any{"kind": "ClusterIssuer", "name": "internal-ca"}, nil, "certificates.yaml", "name: internal-ca"},
	{"certManager.duration", "4320h", nil, "certificates.yaml", "duration: 4320h"},
	{"certManager.renewBefore", "240h", nil, "certificates.yaml", "renewBefore: 240h"},
	{"networkPolicy.enabled", true, at("networkPolicy.controlPlaneCIDRs", []any{"192.168.1.0/24"}), "networkpolicy.yaml", "kind: NetworkPolicy"},
	{"networkPolicy.controlPlaneCIDRs", []any{"10.0.0.0/24", "fd00::/64"}, allOn, "networkpolicy.yaml", "cidr: fd00::/64"},
	{"networkPolicy.metricsFrom", []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}}, allOn, "networkpolicy.yaml", "kubernetes.io/metadata.name: monitoring"},
	{"monitoring.serviceMonitor.enabled", true, nil, "servicemonitor.yaml", "kind: ServiceMonitor"},
	{"monitoring.serviceMonitor.interval", "1m", allOn, "servicemonitor.yaml", "interval: 1m"},
	{"monitoring.serviceMonitor.labels", map[string]any{"release": "prometheus"}, allOn, "servicemonitor.yaml", "release: prometheus"},
	// deploy/ renders it off (no Secret committed); on, the Secret is back.
	{"monitoring.serviceMonitor.createTokenSecret", true, merge(allOn, at("monitoring.serviceMonitor.createTokenSecret", false)), "servicemonitor.yaml", "kind: Secret"},
	{"monitoring.prometheusRule.enabled", true, nil, "prometheusrule.yaml", "kind: PrometheusRule"},
	{"monitoring.prometheusRule.labels", map[string]any{"release": "prometheus"}, allOn, "prometheusrule.yaml", "release: prometheus"},
	{"monitoring.dashboard.enabled", true, nil, "dashboard.yaml", "kind: ConfigMap"},
	{"monitoring.dashboard.labels", map[string]any{"grafana_dashboard": "opencode"}, allOn, "dashboard.yaml", "grafana_dashboard: opencode"},
	{"monitoring.dashboard.annotations", map[string]any{"grafana_folder": "OpenCode"}, allOn, "dashboard.yaml", "grafana_folder: OpenCode"},
}

// TestEveryValueIsWired: each value, changed from its default, changes the
// template it is meant for the way it is meant to; and every value in
// values.yaml has its row.
func TestEveryValueIsWired(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for _, w := range wiring {
		t.Run(w.path, func(t *testing.T) {
			before, err := render.Template(dir, w.base)
			if err != nil {
				t.Fatal(err)
			}
			after, err := render.Template(dir, merge(w.base, at(w.path, w.value)))
			if err != nil {
				t.Fatal(err)
			}
			was, is := strings.Join(before[w.file], "---\n"), strings.Join(after[w.file], "---\n")
			if was == is {
				t.Fatalf("%s=%v leaves %s as it was", w.path, w.value, w.file)
			}
			if w.want == "" {
				if is != "" {
					t.Errorf("%s=%v still renders %s", w.path, w.value, w.file)
				}
				return
			}
			if !hasLine(is, w.want) || hasLine(was, w.want) {
				t.Errorf("%s=%v: %s does not gain the line %q:\n%s", w.path, w.value, w.file, w.want, is)
			}
		})
	}
	t.Run("every value has a row", func(t *testing.T) {
		for _, leaf := range leaves(t, dir) {
			if !slices.ContainsFunc(wiring, func(w wired) bool { return leaf == w.path || strings.HasPrefix(leaf, w.path+".") }) {
				t.Errorf("values.yaml's %s is not in the wiring table", leaf)
			}
		}
	})
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// leaves are the dotted paths of values.yaml's values that are not a
// non-empty map.
func leaves(t *testing.T, dir string) []string {
	t.Helper()
	vals, err := render.DefaultValues(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := strings.TrimPrefix(prefix+"."+k, ".")
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(p, sub)
				continue
			}
			out = append(out, p)
		}
	}
	walk("", vals)
	if len(out) < 30 {
		t.Fatalf("values.yaml has only %d values: %v", len(out), out)
	}
	slices.Sort(out)
	return out
}

// TestImageRepositoryIsNamedOnce: the chart's image.repository is the only
// place the injector's image is named; the Makefile, the release workflow
// and hack/install derive it, and the Go default agrees.
func TestImageRepositoryIsNamedOnce(t *testing.T) {
	root := repoRoot(t)
	repo, err := render.ImageRepository(render.ChartDir(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Makefile", ".github/workflows/release.yaml", "hack/install/main.go"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(repo)) {
			t.Errorf("%s names %s itself: derive it from the chart (go run ./hack/chart -image)", f, repo)
		}
	}
	// The injector's Go default (ImageRepository, for `inject` without
	// --seed-image) is the one Go string that may name it, and must agree.
	var named []string
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if bytes.Contains(b, []byte(`"`+repo+`"`)) {
			named = append(named, p)
			if !regexp.MustCompile(`ImageRepository\s*=\s*"` + regexp.QuoteMeta(repo) + `"`).Match(b) {
				t.Errorf("%s names %s other than as ImageRepository", p, repo)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(named) != 1 {
		t.Errorf("Go files naming %s: %v, want the one ImageRepository constant", repo, named)
	}
}
