package injection

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// BenchmarkPin is what keeping an earlier injection costs on the flux
// fixture: a fresh injection (CREATE), and helm-controller's re-apply of an
// unchanged release (the request without the injection, the stored object
// with it), kept by digest and, for a record written before digests, by
// stripping the stored object; then the injection and the re-apply from the
// review's bytes, where the stored object is decoded too.
func BenchmarkPin(b *testing.B) {
	user := injectiontest.ReadDeployment(b, injectiontest.FluxFixture)
	s := newRelease()
	stored, _, err := Mutate(user, nil, s)
	if err != nil {
		b.Fatal(err)
	}
	beforePin := injectiontest.ReadDeployment(b, "testdata/before-pin/flux.injected.yaml")
	for _, bc := range []struct {
		name       string
		in, stored *appsv1.Deployment
		wantStored *appsv1.Deployment
	}{
		{"inject", user, nil, nil},
		{"reapply-kept", user, stored, stored},
		{"reapply-kept-before-pin", user, beforePin, beforePin},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.wantStored != nil {
				out, _, _ := Mutate(bc.in, bc.stored, s)
				injectiontest.AssertEqual(b, "kept", bc.wantStored, out)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := Mutate(bc.in, bc.stored, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	raw, storedRaw := injectiontest.MustJSON(b, user), injectiontest.MustJSON(b, stored)
	for _, bc := range []struct {
		name   string
		stored []byte
	}{{"json-inject", nil}, {"json-reapply-kept", storedRaw}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := MutateJSON(raw, bc.stored, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
