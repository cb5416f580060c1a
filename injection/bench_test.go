package injection

import (
	"encoding/json"
	"testing"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// BenchmarkInject is the admission hot path's pure part on the flux
// fixture, beside its baseline: the JSON round trip every admission review
// pays anyway (decode the request object, encode the response object).
func BenchmarkInject(b *testing.B) {
	in := injectiontest.ReadDeployment(b, injectiontest.FluxFixture)
	raw, err := json.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	s := testSettings()
	b.Run("inject", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, err := Mutate(in, nil, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-json-roundtrip", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d := in.DeepCopy()
			if err := json.Unmarshal(raw, d); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
