package contract

import (
	"regexp"
	"strings"
	"testing"
)

// Every form of credentials in a repo value is cut before it reaches a
// message: with or without a scheme, in scp form, with '?' or '#' inside
// the password, and with escaped or look-alike '@'.
func TestRedactCutsCredentials(t *testing.T) {
	for _, v := range []string{
		"https://hunter2@github.com/a/b",
		"https://x:hunter2@github.com/a/b",
		"x-access-token:hunter2@github.com:owner/name",
		"user:hunter2@github.com/owner/name",
		"hunter2@github.com:owner/name.git",
		"https://bob:hunter2?x@github.com/a/b",
		"https://bob:hunter2#x@github.com/a/b",
		"bob:hunter2#x@github.com:a/b",
		"https://user:hunter2\uFF20github.com/a/b",
		"hunter2\uFE6Bgithub.com/a/b",
		"https://user:hunter2%40github.com/a/b",
		"https://user%3Ahunter2%40github.com/a/b",
		"https://github.com/a/b?token=hunter2",
		"a/b#hunter2",
	} {
		got := Redact(v)
		if strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q keeps the secret", v, got)
		}
		if _, err := ParseRepo(v, []string{"github.com"}); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseRepo(%q): %v", v, err)
		}
	}
	if got := Redact("https://github.com/a/b"); got != "https://github.com/a/b" {
		t.Errorf("a clean value changed: %q", got)
	}
}

func TestClonePathIsPerHostOwnerAndName(t *testing.T) {
	hosts := []string{"github.com", "git.example.com"}
	a, _ := ParseRepo("angryninja/k8s-cluster", hosts)
	b, _ := ParseRepo("https://git.example.com/angryninja/k8s-cluster", hosts)
	c, _ := ParseRepo("AngryNinja/K8s-Cluster", hosts)
	if a.ClonePath() == b.ClonePath() {
		t.Errorf("two hosts share the clone path %s", a.ClonePath())
	}
	if a.ClonePath() != c.ClonePath() {
		t.Errorf("a change of case only moves the clone: %s, %s", a.ClonePath(), c.ClonePath())
	}
}

// TestRepoCharacterRulesMatchTheirPatterns: the hand-written checks accept
// exactly what the patterns they replace accept, on every string of up to
// five characters over an alphabet of each class's edges and the bytes
// just outside them ('@' '[' '`' '{' '/' ':'), so an off-by-one in a range
// fails.
func TestRepoCharacterRulesMatchTheirPatterns(t *testing.T) {
	rules := []struct {
		name    string
		pattern *regexp.Regexp
		check   func(string) bool
	}{
		{"isRepoSegment", regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`), isRepoSegment},
		{"hasRemoteHelper", regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`), hasRemoteHelper},
	}
	const alphabet = "aAzZ09@[`{/:_.-+ \x80"
	var all func(prefix string, n int, visit func(string))
	all = func(prefix string, n int, visit func(string)) {
		visit(prefix)
		if n == 0 {
			return
		}
		for i := range len(alphabet) {
			all(prefix+alphabet[i:i+1], n-1, visit)
		}
	}
	for _, r := range rules {
		all("", 5, func(s string) {
			if got, want := r.check(s), r.pattern.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, the pattern says %v", r.name, s, got, want)
			}
		})
	}
}
