package e2e

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"
)

// monitoringDocs renders deploy/ with the monitoring component, by kind.
func monitoringDocs(t *testing.T) map[string][]byte {
	t.Helper()
	docs, err := renderDir(t, filepath.Join(root, "deploy", "components", "monitoring"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, doc := range docs {
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		out[head.Kind] = doc
	}
	for _, kind := range []string{"Service", "ServiceMonitor", "PrometheusRule", "Deployment"} {
		if out[kind] == nil {
			t.Fatalf("deploy/ with the monitoring component renders no %s", kind)
		}
	}
	return out
}

// TestServiceMonitorScrapesTheInjector: the ServiceMonitor selects the
// injector's Service, in its namespace, on a port that leads to the
// container's metrics port. (Its schema is checked against the
// prometheus-operator CRDs by TestManifestsValidateServerSide.)
func TestServiceMonitorScrapesTheInjector(t *testing.T) {
	docs := monitoringDocs(t)
	var sm struct {
		Metadata struct{ Namespace string } `json:"metadata"`
		Spec     struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct{ Port string } `json:"endpoints"`
		} `json:"spec"`
	}
	var svc corev1.Service
	if err := yaml.Unmarshal(docs["ServiceMonitor"], &sm); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(docs["Service"], &svc); err != nil {
		t.Fatal(err)
	}
	if sm.Metadata.Namespace != svc.Namespace {
		t.Errorf("ServiceMonitor in %q, Service in %q", sm.Metadata.Namespace, svc.Namespace)
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 || !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
		t.Errorf("selector %v does not select the Service (labels %v)", sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Fatal("no endpoint")
	}
	for _, e := range sm.Spec.Endpoints {
		found := false
		for _, p := range svc.Spec.Ports {
			if p.Name == e.Port && p.TargetPort.StrVal == "metrics" {
				found = true
			}
		}
		if !found {
			t.Errorf("endpoint port %q is not the Service's port to the container's metrics port", e.Port)
		}
	}
}

var (
	metricName = regexp.MustCompile(`\b([a-z_]+_total)\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`(\w+)\s*=~?\s*"([^"]*)"`)
)

// TestAlertsUseTheInjectorsMetrics: every counter an alert reads is one
// the injector serves, with the label values the alert matches on (a
// renamed metric or outcome would silence the alert). Prometheus adds the
// namespace and service target labels itself.
func TestAlertsUseTheInjectorsMetrics(t *testing.T) {
	docs := monitoringDocs(t)
	serveReviews(t)

	served := servedSeries(t)
	text := string(docs["PrometheusRule"])
	uses := metricName.FindAllStringSubmatch(text, -1)
	if len(uses) < 2 || !strings.Contains(text, "up{") {
		t.Fatalf("the rules read %d counters and no up{}: %s", len(uses), text)
	}
	for _, u := range uses {
		name, sel := u[1], u[2]
		series, ok := served[name]
		if !ok {
			t.Errorf("alerts read %s, which the injector does not serve", name)
			continue
		}
		match := false
		for _, s := range series {
			all := true
			for _, m := range matcher.FindAllStringSubmatch(sel, -1) {
				label, want := m[1], m[2]
				if label == "namespace" || label == "service" {
					continue
				}
				if got, ok := s[label]; !ok || !regexp.MustCompile("^(?:"+want+")$").MatchString(got) {
					all = false
				}
			}
			if all {
				match = true
			}
		}
		if !match {
			t.Errorf("no served series of %s matches {%s}: %v", name, sel, series)
		}
	}
}

// servedSeries are the label sets of every series the injector's registry
// serves, by metric family.
func servedSeries(t *testing.T) map[string][]map[string]string {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string][]map[string]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			served[f.GetName()] = append(served[f.GetName()], l)
		}
	}
	return served
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct{ Name string } `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var (
	seriesSelector = regexp.MustCompile(`\b([a-z_:][a-z0-9_:]*)\{`)
	// Read from Prometheus itself (up) and from cert-manager's own metrics.
	notTheInjectors = regexp.MustCompile(`^(up|certmanager_.*)$`)
)

// readDashboard is the monitoring component's Grafana dashboard: a
// ConfigMap the sidecar loads (its label) holding one dashboard's JSON.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	docs := monitoringDocs(t)
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(docs["ConfigMap"], &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard ConfigMap lacks the sidecar's label: %v", cm.Labels)
	}
	if len(cm.Data) != 1 {
		t.Fatalf("want one dashboard, got %d keys", len(cm.Data))
	}
	var d dashboard
	for key, text := range cm.Data {
		if !strings.HasSuffix(key, ".json") {
			t.Errorf("key %s: the sidecar loads *.json", key)
		}
		if err := json.Unmarshal([]byte(text), &d); err != nil {
			t.Fatalf("%s is not JSON: %v", key, err)
		}
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: Grafana needs both", d.UID, d.Title)
	}
	return d
}

// serveReviews makes the injector count a review of each common outcome:
// counters appear once counted.
func serveReviews(t *testing.T) {
	t.Helper()
	ns := namespace(t, nil)
	bad := fixture(t, "ha", ns)
	bad.Annotations["opencode.angryninja.cloud/repo"] = "ssh://github.com/a/b"
	_ = env.Client.Create(ctx, bad)
	_ = env.Client.Create(ctx, fixture(t, "flux", ns))
}

// TestDashboardUsesTheInjectorsMetrics: the dashboard's panels cover
// reviews by outcome, latency, certificate expiry and provisioned claims,
// and every series a query reads is one the injector serves once it has
// answered reviews (or Prometheus's up, or cert-manager's certificate
// metrics).
func TestDashboardUsesTheInjectorsMetrics(t *testing.T) {
	d := readDashboard(t)
	serveReviews(t)
	served := servedSeries(t)
	var all []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			all = append(all, q.Expr)
			for _, m := range seriesSelector.FindAllStringSubmatch(q.Expr, -1) {
				name := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m[1], "")
				if _, ok := served[name]; !ok && !notTheInjectors.MatchString(name) {
					t.Errorf("panel %q reads %s, which the injector does not serve", p.Title, m[1])
				}
			}
		}
	}
	text := strings.Join(all, "\n")
	for what, re := range map[string]string{
		"reviews by outcome": `opencode_injector_mutations_total.*by \(outcome\)|by \(outcome\).*opencode_injector_mutations_total`,
		"latency":            `controller_runtime_webhook_latency_seconds_bucket`,
		"certificate expiry": `certmanager_certificate_expiration_timestamp_seconds`,
		"provisioned claims": `controller="claim-provisioner"`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("no panel shows %s", what)
		}
	}
}
