package chart

import (
	"testing"

	"github.com/google/cel-go/cel"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/hack/chart/render"
)

// object is one rendered document, decoded.
type object struct {
	Kind     string `json:"kind"`
	Type     string `json:"type"`
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec     map[string]any   `json:"spec"`
	Webhooks []map[string]any `json:"webhooks"`
}

func decode(t *testing.T, docs []string) []object {
	t.Helper()
	var out []object
	for _, doc := range docs {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// TestExistingIssuerRendersNoCAChain: with certManager.issuerRef set the
// chart issues its serving certificate from that issuer and renders no
// self-signed Issuer or CA Certificate of its own.
func TestExistingIssuerRendersNoCAChain(t *testing.T) {
	dir := render.ChartDir(repoRoot(t))
	for name, c := range map[string]struct {
		values      map[string]any
		issuers, ca int
		issuer      string
	}{
		"own CA":          {nil, 2, 1, "opencode-injector-ca"},
		"existing issuer": {at("certManager.issuerRef", map[string]any{"kind": "ClusterIssuer", "name": "internal-ca"}), 0, 0, "internal-ca"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := render.Template(dir, c.values)
			if err != nil {
				t.Fatal(err)
			}
			issuers, ca, serving := 0, 0, 0
			for _, o := range decode(t, out["certificates.yaml"]) {
				switch {
				case o.Kind == "Issuer" || o.Kind == "ClusterIssuer":
					issuers++
				case o.Kind == "Certificate" && o.Spec["isCA"] == true:
					ca++
				case o.Kind == "Certificate":
					serving++
					if ref, _ := o.Spec["issuerRef"].(map[string]any); ref["name"] != c.issuer {
						t.Errorf("the serving certificate is issued by %v, want %s", ref, c.issuer)
					}
				}
			}
			if issuers != c.issuers || ca != c.ca || serving != 1 {
				t.Errorf("%d issuers, %d CA certificates, %d serving certificates; want %d, %d, 1", issuers, ca, serving, c.issuers, c.ca)
			}
		})
	}
}

// TestScaleGuardCallsOnlyAboveOneReplica evaluates the scale guard's
// matchConditions with CEL, as the API server does, on the Scale object:
// scaling to 0 or 1 never waits for the injector, to 2 or more does.
func TestScaleGuardCallsOnlyAboveOneReplica(t *testing.T) {
	out, err := render.Template(render.ChartDir(repoRoot(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	vwc := decode(t, out["validatingwebhookconfiguration.yaml"])
	if len(vwc) != 1 || len(vwc[0].Webhooks) != 1 {
		t.Fatalf("want one webhook: %v", vwc)
	}
	conditions, _ := vwc[0].Webhooks[0]["matchConditions"].([]any)
	if len(conditions) == 0 {
		t.Fatal("the scale guard has no matchConditions: every scale waits for the injector")
	}
	env, err := cel.NewEnv(cel.Variable("object", cel.DynType))
	if err != nil {
		t.Fatal(err)
	}
	var programs []cel.Program
	for _, c := range conditions {
		expr := c.(map[string]any)["expression"].(string)
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", expr, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		programs = append(programs, prg)
	}
	// The webhook is called only when every condition holds.
	called := func(spec map[string]any) bool {
		scale := map[string]any{"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": spec}
		for _, prg := range programs {
			v, _, err := prg.Eval(map[string]any{"object": scale})
			if err != nil {
				t.Fatalf("%v: %v", spec, err)
			}
			if v.Value() != true {
				return false
			}
		}
		return true
	}
	for _, c := range []struct {
		spec map[string]any
		want bool
	}{
		{map[string]any{}, false},
		{map[string]any{"replicas": int64(0)}, false},
		{map[string]any{"replicas": int64(1)}, false},
		{map[string]any{"replicas": int64(2)}, true},
		{map[string]any{"replicas": int64(5)}, true},
	} {
		if got := called(c.spec); got != c.want {
			t.Errorf("scale to %v: webhook called %v, want %v", c.spec, got, c.want)
		}
	}
}

// TestServiceMonitorReadsTheScraperToken: the ServiceMonitor's
// authorization names the scraper's token Secret and its `token` key, the
// key the API server's token controller fills.
func TestServiceMonitorReadsTheScraperToken(t *testing.T) {
	out, err := render.Template(render.ChartDir(repoRoot(t)), allOn)
	if err != nil {
		t.Fatal(err)
	}
	var tokenSecret, tokenFor, saName string
	var creds map[string]any
	for _, o := range decode(t, out["servicemonitor.yaml"]) {
		switch o.Kind {
		case "ServiceAccount":
			saName = o.Metadata.Name
		case "Secret":
			if o.Type == "kubernetes.io/service-account-token" {
				tokenSecret = o.Metadata.Name
				tokenFor = o.Metadata.Annotations["kubernetes.io/service-account.name"]
			}
		case "ServiceMonitor":
			endpoints, _ := o.Spec["endpoints"].([]any)
			if len(endpoints) != 1 {
				t.Fatalf("endpoints: %v", endpoints)
			}
			auth, _ := endpoints[0].(map[string]any)["authorization"].(map[string]any)
			creds, _ = auth["credentials"].(map[string]any)
			if auth["type"] != "Bearer" {
				t.Errorf("authorization type %v, want Bearer", auth["type"])
			}
		}
	}
	if tokenSecret == "" || saName == "" {
		t.Fatalf("no scraper ServiceAccount (%q) or token Secret (%q)", saName, tokenSecret)
	}
	if creds["name"] != tokenSecret || creds["key"] != "token" {
		t.Errorf("credentials %v, want the Secret %s's key token", creds, tokenSecret)
	}
	if tokenFor != saName {
		t.Errorf("the token Secret is for the ServiceAccount %q, want the scraper %s", tokenFor, saName)
	}
}
