package main

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckFallsBackOnTheCompiledInRoots: `check` run in the image (no
// system roots) against an API server whose kubeconfig carries no
// certificate-authority-data (a public CA) must verify it against the
// compiled-in roots, as the seed does. The forged leaf names a compiled-in
// root as its issuer: Go names that root as the failed candidate only when
// it is among the roots consulted.
func TestCheckFallsBackOnTheCompiledInRoots(t *testing.T) {
	bin := hostBinary(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{forgedLeaf(t)}}
	srv.StartTLS()
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+srv.URL+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "--kubeconfig", kubeconfig, "--timeout", "5s")
	cmd.Env = imageTrustStore()
	out, _ := cmd.CombinedOutput()
	candidate := `candidate authority certificate "` + forgedRootName + `"`
	if !strings.Contains(string(out), candidate) {
		t.Errorf("check in the image did not verify the API server against the compiled-in roots (want %q):\n%s", candidate, out)
	}
}
