package app

import "crypto/tls"

// TLSOptions are a server's TLS options; each server gets its own list, so
// an option added for one never leaks into the other. Without enableHTTP2
// the server offers HTTP/1.1 only in ALPN, which closes HTTP/2's rapid-reset
// (CVE-2023-44487) and stream-cancellation (CVE-2023-39325) attacks, as
// kubebuilder's scaffold does.
func TLSOptions(enableHTTP2 bool) []func(*tls.Config) {
	if enableHTTP2 {
		return nil
	}
	return []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
}
