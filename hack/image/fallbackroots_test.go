package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// forgedRootName is the compiled-in root the test's server claims to be
// issued by.
const forgedRootName = "USERTrust ECC Certification Authority"

// TestSeedFallsBackOnTheCompiledInRoots: in the image (no system roots) the
// seed verifies servers against the roots compiled into the binary, which it
// registers at its start. The server's certificate names a compiled-in root
// as its issuer but is signed by another key: Go then reports that root as
// the candidate that failed, which it can only have found among the
// fallback roots. With a system bundle (SSL_CERT_FILE) that bundle is used
// and the compiled-in root is never a candidate.
func TestSeedFallsBackOnTheCompiledInRoots(t *testing.T) {
	bin := hostBinary(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{forgedLeaf(t)}}
	srv.StartTLS()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	seed := func(env []string) string {
		cmd := exec.Command(bin, "seed", "--repo", "https://"+u.Host+"/owner/repo.git", "--allowed-git-hosts", u.Host,
			"--workspace", filepath.Join(t.TempDir(), "workspace", "repo"), "--auth-target", "", "--stall-timeout", "10s")
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	candidate := `candidate authority certificate "` + forgedRootName + `"`
	if out := seed(imageTrustStore()); !strings.Contains(out, candidate) {
		t.Errorf("without system roots the seed did not verify against the compiled-in roots (want %q):\n%s", candidate, out)
	}
	// A system bundle holding only httptest's own certificate, which has
	// signed nothing the server presents.
	unrelated := httptest.NewTLSServer(http.NotFoundHandler())
	unrelated.Close()
	other := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: unrelated.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	env := imageTrustStore()
	env[len(env)-2] = "SSL_CERT_FILE=" + other
	if out := seed(env); strings.Contains(out, candidate) || !strings.Contains(out, "unknown authority") {
		t.Errorf("with a system bundle the seed still used the compiled-in roots, or did not refuse the server:\n%s", out)
	}
}

// forgedLeaf is a certificate for 127.0.0.1 whose issuer and authority key
// are forgedRootName's, signed by a key of the test's own.
func forgedLeaf(t *testing.T) tls.Certificate {
	t.Helper()
	var root *x509.Certificate
	for r := range bundle.Roots() {
		if c, err := x509.ParseCertificate(r.Certificate); err == nil && c.Subject.CommonName == forgedRootName {
			root = c
		}
	}
	if root == nil {
		t.Fatalf("no %s in the bundle", forgedRootName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parent := *root
	parent.PublicKey = &key.PublicKey // signed by our key under the root's name
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, &parent, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
