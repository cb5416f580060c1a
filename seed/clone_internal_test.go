package seed

import "testing"

// TestSameRepo: remotes compare by host and path; only an @ before the
// path is userinfo, so an @ in the path is kept (a remote naming another
// repository after it is not the annotation's).
func TestSameRepo(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://github.com/a/b.git", "https://github.com/a/b.git", true},
		{"https://GitHub.com/a/b", "https://github.com/a/b.git", true},
		{"git@github.com:a/b.git", "https://github.com/a/b.git", true},
		{"ssh://git@github.com/a/b", "https://github.com/a/b.git", true},
		{"https://github.com/a/c.git", "https://github.com/a/b.git", false},
		{"https://gitlab.com/a/b.git", "https://github.com/a/b.git", false},
		{"https://github.com/other@github.com/a/b", "https://github.com/a/b.git", false},
	} {
		if got := sameRepo(tc.a, tc.b); got != tc.same {
			t.Errorf("sameRepo(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
