package rootonly_test

import (
	"testing"

	"github.com/angryninja/opencode-injector/test/rootonly"
)

// A GitHub-hosted runner sets CI=true and is not root: its run must skip.
func TestRequired(t *testing.T) {
	for _, c := range []struct {
		ci, actions string
		want        bool
	}{
		{"", "", false},
		{"true", "true", false},
		{"true", "", true},
		{"false", "", false},
	} {
		t.Setenv("CI", c.ci)
		t.Setenv("GITHUB_ACTIONS", c.actions)
		if got := rootonly.Required(); got != c.want {
			t.Errorf("CI=%q GITHUB_ACTIONS=%q: Required() = %v, want %v", c.ci, c.actions, got, c.want)
		}
	}
}
