package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// defaultCertDir is serve's --cert-dir default.
const defaultCertDir = "/var/run/opencode-injector/tls"

// checkServingCertificate finds the Secret the injector serves from (the
// volume its Pods mount at --cert-dir: cert-manager's Secret in deploy/),
// checks every webhook's caBundle against it and its expiry.
func checkServingCertificate(ctx context.Context, c client.Client, r *report, o checkOptions, pods []corev1.Pod, webhooks []*webhook, svc corev1.Service) {
	secretName, err := servingSecretName(pods)
	if err != nil {
		r.fail("serving certificate", err.Error(), "mount the TLS Secret at --cert-dir, as deploy/ does")
		return
	}
	what := "serving certificate (Secret " + svc.Namespace + "/" + secretName + ")"
	describe := describeCertificate(webhooks, svc.Namespace)
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: secretName}, &secret); err != nil {
		r.fail(what, err.Error(), "cert-manager writes it from the serving Certificate: "+describe)
		return
	}
	chain, err := parseCertificates(secret.Data[corev1.TLSCertKey])
	if err != nil {
		r.fail(what, corev1.TLSCertKey+": "+err.Error(), "let cert-manager issue it again: kubectl -n "+svc.Namespace+" delete secret "+secretName)
		return
	}
	leaf := chain[0]
	dnsName := svc.Name + "." + svc.Namespace + ".svc"
	for _, w := range webhooks {
		if w != nil {
			checkCABundle(r, *w, chain, dnsName)
		}
	}
	left := time.Until(leaf.NotAfter)
	until := leaf.NotAfter.UTC().Format(time.RFC3339)
	renew := "cert-manager renews it 30 days ahead: " + describe + ", and cert-manager's logs, say why it did not"
	switch {
	case left <= 0:
		r.fail(what, "expired on "+until+": the API server refuses the webhook's TLS, so every labeled Deployment is refused", renew)
	case left < o.expiryMargin:
		r.fail(what, fmt.Sprintf("expires on %s, in %s", until, left.Round(time.Hour)), renew)
	default:
		r.pass(what, fmt.Sprintf("valid until %s (%d days)", until, int(left.Hours()/24)))
	}
}

// describeCertificate is the command that shows the serving Certificate,
// the one the webhooks' cert-manager.io/inject-ca-from annotation names.
func describeCertificate(webhooks []*webhook, namespace string) string {
	for _, w := range webhooks {
		if w == nil {
			continue
		}
		if ns, name, ok := strings.Cut(w.annotations["cert-manager.io/inject-ca-from"], "/"); ok {
			return "kubectl -n " + ns + " describe certificate " + name
		}
	}
	return "kubectl -n " + namespace + " describe certificates"
}

// servingSecretName is the Secret mounted at --cert-dir in the injector's
// container.
func servingSecretName(pods []corev1.Pod) (string, error) {
	for _, p := range pods {
		ctr, ok := injectorContainer(p)
		if !ok {
			continue
		}
		dir := flagValue(ctr.Args, "cert-dir", defaultCertDir)
		m := slices.IndexFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
		if m < 0 {
			return "", fmt.Errorf("Pod %s mounts nothing at --cert-dir %s", p.Name, dir)
		}
		v := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == ctr.VolumeMounts[m].Name })
		if v < 0 || p.Spec.Volumes[v].Secret == nil {
			return "", fmt.Errorf("Pod %s mounts no Secret at --cert-dir %s", p.Name, dir)
		}
		return p.Spec.Volumes[v].Secret.SecretName, nil
	}
	return "", errors.New("no injector Pod (running `opencode-injector serve`) to read its --cert-dir from")
}

// checkCABundle verifies the serving certificate with the webhook's
// caBundle as the only root, for the name the API server calls. Validity
// dates are the expiry check's: an expired leaf is verified at its last
// valid moment, so one cause gives one failed line.
func checkCABundle(r *report, w webhook, chain []*x509.Certificate, dnsName string) {
	what := "caBundle of " + w.String()
	fix := "cert-manager's CA injector fills it from annotation cert-manager.io/inject-ca-from (here " + orNone(w.annotations["cert-manager.io/inject-ca-from"]) +
		"): it must name the serving Certificate, and cert-manager-cainjector must run"
	if len(w.clientConfig.CABundle) == 0 {
		r.fail(what, "empty, so the API server cannot trust the webhook", fix)
		return
	}
	roots, err := parseCertificates(w.clientConfig.CABundle)
	if err != nil {
		r.fail(what, err.Error(), fix)
		return
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	leaf := chain[0]
	at := time.Now()
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates, DNSName: dnsName, CurrentTime: at}); err != nil {
		r.fail(what, "does not verify the serving certificate for "+dnsName+": "+err.Error(), fix)
		return
	}
	r.pass(what, "verifies the serving certificate for "+dnsName)
}

// parseCertificates reads every CERTIFICATE block of PEM data.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

func orNone(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
