package seed

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/angryninja/opencode-injector/contract"
)

// trust is what the seed trusts when a CA is given (annotation ca-bundle):
// the system roots plus the CA, never the CA instead of them.
type trust struct {
	pool  *x509.CertPool // the seed's own: x509.SystemCertPool plus the CA
	ca    []byte         // the CA's certificates, PEM
	roots []byte         // the system roots, PEM, for git in the workspace
}

// Where Go looks for the system roots on Linux (crypto/x509's root_linux.go
// and root_unix.go); SSL_CERT_FILE and SSL_CERT_DIR replace them, as there.
var (
	systemCertFiles = []string{
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem",
		"/etc/pki/tls/cacert.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		"/etc/ssl/cert.pem",
	}
	systemCertDirs = []string{"/etc/ssl/certs", "/etc/pki/tls/certs"}
)

// loadTrust reads the CA at source; an empty source means the system roots
// alone (nil).
func loadTrust(source string) (*trust, error) {
	if source == "" {
		return nil, nil
	}
	fix := "put the git host's CA certificates (PEM) in key " + contract.CABundleKey + " of the ConfigMap annotation " + contract.AnnotationCABundle + " names"
	data, err := os.ReadFile(source)
	if err != nil {
		return nil, fail(ExitUsage, err, "read CA bundle %s; %s", source, fix)
	}
	certs := pemCertificates(data)
	if len(certs) == 0 {
		return nil, fail(ExitUsage, nil, "CA bundle %s holds no PEM certificate; %s", source, fix)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	t := &trust{pool: pool, ca: encodePEM(certs), roots: encodePEM(systemRoots())}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return t, nil
}

// write puts the CA alone (for NODE_EXTRA_CA_CERTS, which Node adds to its
// own roots) and the system roots plus the CA (for GIT_SSL_CAINFO, which
// replaces git's) into dir on the claim, on every start, so a rotated CA
// arrives with the next pod.
func (t *trust) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return diskError(err, "create %s", dir)
	}
	if err := writeAtomic(filepath.Join(dir, contract.CAFileName), t.ca); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, contract.CAPoolFileName), append(bytes.Clone(t.roots), t.ca...))
}

// systemRoots are the certificates Go's system pool is made of on Linux:
// the first readable bundle file and every file of the certificate
// directories; without any, the roots compiled into the binary (the image
// has an empty base), less those Go trusts only with a constraint that a
// PEM bundle cannot carry.
func systemRoots() []*x509.Certificate {
	files, dirs := systemCertFiles, systemCertDirs
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		files = []string{f}
	}
	if d := os.Getenv("SSL_CERT_DIR"); d != "" {
		dirs = strings.Split(d, ":")
	}
	var certs []*x509.Certificate
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			certs = append(certs, pemCertificates(data)...)
			break
		}
	}
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if data, err := os.ReadFile(filepath.Join(d, e.Name())); err == nil {
				certs = append(certs, pemCertificates(data)...)
			}
		}
	}
	if len(certs) > 0 {
		return certs
	}
	for r := range bundle.Roots() {
		if c, err := x509.ParseCertificate(r.Certificate); err == nil && r.Constraint == nil {
			certs = append(certs, c)
		}
	}
	return certs
}

// pemCertificates are the certificates in data; other blocks are skipped.
func pemCertificates(data []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
}

// encodePEM writes each certificate once, in order.
func encodePEM(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	seen := map[string]bool{}
	for _, c := range certs {
		if seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}
