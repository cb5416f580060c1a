package seed_test

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/test/gitserver"
)

// selfHosted starts a git server whose CA is its own: in no system pool.
func selfHosted(t *testing.T) *gitserver.Server {
	t.Helper()
	repos := t.TempDir()
	if err := gitserver.MakeRepo(repos, "team", "infra", 10, 2); err != nil {
		t.Fatal(err)
	}
	s, err := gitserver.StartWithOwnCA(repos, token, t.TempDir(), "forgejo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// One workspace uses a GitHub-like host (its CA stands in for the system
// roots through SSL_CERT_FILE) and a self-hosted one: the seed clones from
// the self-hosted host only with its CA, which it adds to the system roots;
// the bundle it writes lets the real git binary fetch from both.
func TestSelfHostedCAIsAddedToTheSystemRoots(t *testing.T) {
	forgejo := selfHosted(t)
	v := newVolume(t)
	ws := filepath.Join(v.claim, "workspace", forgejo.Host, "team", "infra")
	tlsDir := filepath.Join(v.claim, "tls")
	v.env["OPENCODE_SEED_REPO"] = forgejo.RepoURL("team", "infra")
	v.env["OPENCODE_SEED_WORKSPACE"] = ws
	v.env["OPENCODE_SEED_ALLOWED_HOSTS"] = server.Host + "," + forgejo.Host

	before := snapshot(t, v.claim)
	v.seed(t).want(t, 5, "signed by a CA the seed does not trust", "opencode.angryninja.cloud/ca-bundle")
	if after := snapshot(t, v.claim); len(after) != len(before) {
		t.Fatalf("a refused clone changed the claim: %v", after)
	}

	v.env["OPENCODE_SEED_CA_SOURCE"] = forgejo.CAFile
	v.env["OPENCODE_SEED_CA_TARGET"] = tlsDir
	v.seed(t).want(t, 0, "cloned", "CA bundle")
	if _, err := os.Stat(filepath.Join(ws, ".git")); err != nil {
		t.Fatalf("no clone: %v", err)
	}
	ca, _ := os.ReadFile(filepath.Join(tlsDir, "ca.crt"))
	if n := strings.Count(string(ca), "BEGIN CERTIFICATE"); n != 1 {
		t.Errorf("ca.crt holds %d certificates, want the CA alone", n)
	}

	// The same seed, CA given, still trusts the system roots: a GitHub-like
	// repository clones beside the self-hosted one.
	v.env["OPENCODE_SEED_REPO"] = server.RepoURL("acme", "tools")
	v.env["OPENCODE_SEED_WORKSPACE"] = v.workspace()
	v.seed(t).want(t, 0, "cloned")

	// git in the workspace container's env: GIT_SSL_CAINFO is the bundle.
	bundle := filepath.Join(tlsDir, "ca-certificates.crt")
	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	for _, url := range []string{server.RepoURL("acme", "tools"), forgejo.RepoURL("team", "infra")} {
		git := exec.Command("git", "-c", "http.extraHeader="+auth, "ls-remote", url, "HEAD")
		git.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GIT_SSL_CAINFO=" + bundle, "GIT_TERMINAL_PROMPT=0"}
		if out, err := git.CombinedOutput(); err != nil {
			t.Errorf("git ls-remote %s with the bundle: %v\n%s", url, err, out)
		}
	}
}

func TestCABundleWithoutCertificateIsRefused(t *testing.T) {
	v := newVolume(t)
	empty := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v.env["OPENCODE_SEED_CA_SOURCE"] = empty
	v.env["OPENCODE_SEED_CA_TARGET"] = filepath.Join(v.claim, "tls")
	v.seed(t).want(t, 2, "holds no PEM certificate", "key ca.crt", "opencode.angryninja.cloud/ca-bundle")
}
