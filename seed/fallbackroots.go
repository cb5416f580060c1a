package seed

import (
	"crypto/x509"
	"sync"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// UseCompiledInRoots makes the roots compiled into the binary (Mozilla's,
// through x509roots' bundle) crypto/x509's fallback: used only when the
// system has no roots, as on the image's empty base; a system bundle or
// SSL_CERT_FILE still wins. The seed registers them at its start rather
// than every process at init (what importing x509roots/fallback does):
// parsing them costs ~660 KB and 8,800 allocations, and only the seed dials
// hosts whose CA nothing else names. Once a process: x509 allows one call.
var UseCompiledInRoots = sync.OnceFunc(func() {
	pool := x509.NewCertPool()
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			continue // as systemRoots: a root Go cannot parse verifies nothing
		}
		if r.Constraint == nil {
			pool.AddCert(c)
		} else {
			pool.AddCertWithConstraint(c, r.Constraint)
		}
	}
	x509.SetFallbackRoots(pool)
})
