package gitserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ownCA is a CA of the server's own and the certificate it serves,
// signed by it for 127.0.0.1: a self-hosted host whose CA no system pool
// holds (httptest's certificate is the same in every server).
type ownCA struct {
	name    string
	ca      []byte // DER
	serving tls.Certificate
	listen  string // address to listen on
}

// StartWithOwnCA is Start with a CA made for this server; CAFile holds that
// CA, named after name.
func StartWithOwnCA(root, token, caDir, name string) (*Server, error) {
	return StartWithOwnCAAt("127.0.0.1", root, token, caDir, name)
}

// StartWithOwnCAAt is StartWithOwnCA listening on ip (a free port) with a
// certificate for ip: a host that clients elsewhere (pods on a node) dial
// by address, as there is no DNS.
func StartWithOwnCAAt(ip, root, token, caDir, name string) (*Server, error) {
	addr := net.ParseIP(ip)
	if addr == nil {
		return nil, fmt.Errorf("git server address %q is not an IP address", ip)
	}
	own, err := newOwnCA(name, addr)
	if err != nil {
		return nil, fmt.Errorf("make CA %s: %w", name, err)
	}
	own.listen = net.JoinHostPort(ip, "0")
	return start(root, token, caDir, own)
}

func newOwnCA(name string, ip net.IP) (*ownCA, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{ip},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return &ownCA{name: name, ca: caDER, serving: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}, nil
}
