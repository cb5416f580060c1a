package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// TestMetricsNeedAnAuthorizedToken: /metrics is served over HTTPS to
// clients whose token the API server authenticates and authorizes for GET
// /metrics (deploy/'s metrics-reader ClusterRole), and to no one else.
func TestMetricsNeedAnAuthorizedToken(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, "metrics")
	metricsAddr := testenv.FreeAddr(t)
	startManager(t, dir, settings, app.ServerOptions{MetricsBindAddress: metricsAddr, MetricsSecure: true})

	// The metrics reader role as deploy/ declares it, and deploy/ keeps the
	// endpoint secure.
	docs, err := testenv.Render(root + "/deploy")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		if strings.Contains(string(doc), "kind: Deployment") && strings.Contains(string(doc), "metrics-secure=false") {
			t.Error("deploy/ serves /metrics without authentication")
		}
	}
	var reader rbacv1.ClusterRole
	for _, doc := range docs {
		var r rbacv1.ClusterRole
		if yaml.Unmarshal(doc, &r) == nil && r.Kind == "ClusterRole" && r.Name == "opencode-injector-metrics-reader" {
			reader = r
		}
	}
	if reader.Name == "" {
		t.Fatal("deploy/ declares no opencode-injector-metrics-reader ClusterRole")
	}
	reader.ResourceVersion = ""
	if err := env.Client.Create(ctx, &reader); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, &reader) })

	ns := namespace(t, nil)
	token := func(name string, bound bool) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		if err := env.Client.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		if bound {
			binding := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "metrics-" + ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
			}
			if err := env.Client.Create(ctx, binding); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(ctx, binding) })
		}
		tr := &authenticationv1.TokenRequest{}
		if err := env.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
			t.Fatalf("token for %s: %v", name, err)
		}
		return tr.Status.Token
	}
	scraper, stranger := token("scraper", true), token("stranger", false)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test certificate
	get := func(bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitFor(t, func() bool { code, _ := get(""); return code != 0 }, "the metrics server")
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	if code, _ := get(stranger); code != http.StatusForbidden {
		t.Errorf("with a token not allowed to GET /metrics: %d, want 403", code)
	}
	code, body := get(scraper)
	if code != http.StatusOK || !strings.Contains(body, "opencode_injector_mutations_total") {
		t.Errorf("with the metrics reader's token: %d, want 200 with the injector's metrics", code)
	}
	if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "opencode_injector") {
			t.Error("/metrics answers plain HTTP")
		}
	}
}
