package injection

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPutBackIsOneInsertionAfterTheOther: for records whose indices increase
// (the ones agreesWith trusts), some past the end of what is left and some
// of a name the user set since, putBack gives what inserting each original
// at its index, one after the other, gave before it.
func TestPutBackIsOneInsertionAfterTheOther(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 5))
	names := []string{"HOME", "GIT_CONFIG_KEY_0", "OPENCODE_SERVER_PASSWORD"}
	for range 2000 {
		env := make([]corev1.EnvVar, rng.IntN(6))
		for i := range env {
			env[i] = corev1.EnvVar{Name: fmt.Sprintf("E%d", i)}
		}
		var originals []replacedEnv
		for index := rng.IntN(3); index < len(env)+8 && len(originals) < 6; index += 1 + rng.IntN(3) {
			originals = append(originals, replacedEnv{Index: index, EnvVar: corev1.EnvVar{Name: names[rng.IntN(len(names))], Value: fmt.Sprint(len(originals))}})
		}
		usersNow := map[string]bool{names[rng.IntN(len(names))]: rng.IntN(2) == 0}
		want := slices.Clone(env)
		for _, o := range originals {
			if !usersNow[o.Name] {
				want = slices.Insert(want, min(o.Index, len(want)), o.EnvVar)
			}
		}
		if got := putBack(slices.Clone(env), originals, usersNow); !slices.Equal(got, want) {
			t.Fatalf("putBack(%v, %v, %v) = %v, want %v", env, originals, usersNow, got, want)
		}
	}
}
