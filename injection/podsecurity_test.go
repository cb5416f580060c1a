package injection

import (
	"slices"
	"testing"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// restrictedViolations are the Pod Security "restricted" checks the pod
// template of d fails, by reason.
func restrictedViolations(t *testing.T, d *appsv1.Deployment) []string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, r := range evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()},
		&d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
		if !r.Allowed {
			reasons = append(reasons, r.ForbiddenReason)
		}
	}
	return reasons
}

// The injection never makes a pod less secure than the user's own: a
// template that meets "restricted" still does, and one that does not fails
// no check it did not already fail (the seed is never less secure than the
// containers it serves). One fact has two names: a pod that already fails
// "runAsNonRoot != true" runs as its image's user, root for the official
// OpenCode image, and the seed then says runAsUser 0 explicitly (its own
// image's user is not root, and it must own what OpenCode writes).
func TestInjectionKeepsPodSecurity(t *testing.T) {
	restricted := 0
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			out, _, err := Mutate(in, nil, testSettings())
			if err != nil || !IsInjected(out) {
				t.Skip("not injected")
			}
			before, after := restrictedViolations(t, in), restrictedViolations(t, out)
			if len(before) == 0 {
				restricted++
			}
			for _, r := range after {
				if r == "runAsUser=0" && slices.Contains(before, "runAsNonRoot != true") {
					continue
				}
				if !slices.Contains(before, r) {
					t.Errorf("the injection adds a Pod Security restricted violation: %s (before: %q)", r, before)
				}
			}
		})
	}
	if restricted == 0 {
		t.Error("no case meets restricted before injection: the property is not exercised")
	}
}
