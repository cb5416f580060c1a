package injection

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// The values derived from the settings follow them: reviews made with
// settings that alternate (seed image, allowed hosts, default resources,
// also changed in place) each get exactly what a first review with those
// settings gets, the credential pairs of a record's own hosts included.
func TestDerivedValuesFollowTheSettings(t *testing.T) {
	in := injectiontest.ReadDeployment(t, "testdata/init-and-volumes.yaml")
	base := testSettings()
	other := testSettings()
	other.SeedImage = ImageRepository + ":v9.9.9"
	other.AllowedGitHosts = []string{"github.com", "git.example.com"}
	other.DefaultRequests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}
	other.DefaultLimits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi"), corev1.ResourceCPU: resource.MustParse("2")}
	inPlace := testSettings()
	inPlace.DefaultLimits = corev1.ResourceList{}
	for k, v := range base.DefaultLimits {
		inPlace.DefaultLimits[k] = v
	}

	fresh := func(s Settings) string {
		t.Helper()
		lastDerived.Store(nil)
		return mutateToYAML(t, in, s)
	}
	want := map[string]string{"base": fresh(base), "other": fresh(other)}
	inPlaceBefore := fresh(inPlace)
	inPlace.DefaultLimits[corev1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
	want["in place"] = fresh(inPlace)
	if want["in place"] == inPlaceBefore {
		t.Fatal("the in-place change of the default limits changed nothing: the test proves nothing")
	}
	for _, name := range []string{"base", "other", "base", "in place", "other", "in place", "base"} {
		s := map[string]Settings{"base": base, "other": other, "in place": inPlace}[name]
		if got := mutateToYAML(t, in, s); got != want[name] {
			t.Fatalf("settings %s after others: the injection differs from a first one:\n%s\nwant\n%s", name, got, want[name])
		}
	}

	// Un-injecting a workspace injected with other hosts strips its
	// credential pairs, whichever settings were derived last.
	injected, _, err := Mutate(in, nil, other)
	if err != nil {
		t.Fatal(err)
	}
	delete(injected.Labels, contract.LabelInject)
	lastDerived.Store(nil)
	wantOut := mutateToYAML(t, injected, other)
	mutateToYAML(t, in, base) // base's values derived last
	if got := mutateToYAML(t, injected, other); got != wantOut {
		t.Fatalf("un-injection after other settings differs:\n%s\nwant\n%s", got, wantOut)
	}
}

func mutateToYAML(t *testing.T, in *appsv1.Deployment, s Settings) string {
	t.Helper()
	out, warnings, err := Mutate(in, nil, s)
	return string(render(t, out, warnings, err))
}

// Concurrent reviews share the derived values and the pooled buffers:
// reviews of every golden case under two settings, run from several
// goroutines at once, answer the bytes each answers alone (`go test -race`
// also checks that nothing shared is written).
func TestConcurrentReviewsAgree(t *testing.T) {
	other := testSettings()
	other.AllowedGitHosts = []string{"github.com", "git.example.com"}
	type review struct {
		raw  []byte
		s    Settings
		want []byte
	}
	var reviews []review
	for _, in := range injectiontest.GoldenCases(t) {
		for _, s := range []Settings{testSettings(), other} {
			r := review{raw: injectiontest.MustJSON(t, in), s: s}
			r.want = encodedReview(t, r.raw, s)
			reviews = append(reviews, r)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 * len(reviews) {
				r := reviews[(i+g)%len(reviews)]
				if got := encodedReview(t, r.raw, r.s); !bytes.Equal(got, r.want) {
					t.Errorf("a concurrent review answered\n%s\nalone it answers\n%s", got, r.want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// encodedReview is MutateJSON's patch and warnings for raw, encoded.
func encodedReview(t *testing.T, raw []byte, s Settings) []byte {
	m, err := MutateJSON(raw, nil, s)
	if err != nil {
		t.Error(err)
		return nil
	}
	patch, err := EncodePatch(m.Patch)
	if err != nil {
		t.Error(err)
	}
	return append(patch, strings.Join(m.Warnings, "\n")...)
}
