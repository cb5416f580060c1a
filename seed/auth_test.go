package seed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/seed"
)

// TestAuthMatrix: absent / present and untouched / present and changed
// locally, times Secret unchanged / rotated.
func TestAuthMatrix(t *testing.T) {
	const (
		v1    = `{"github-copilot":{"refresh":"gho_v1"}}`
		v2    = `{"github-copilot":{"refresh":"gho_v2_rotated"}}`
		login = `{"github-copilot":{"refresh":"gho_newer_login"}}`
	)
	for _, tc := range []struct {
		name    string
		local   string // "" : absent
		rotated bool
		want    string
		outcome string
	}{
		{"absent, Secret unchanged", "", false, v1, "seeded"},
		{"absent, Secret rotated", "", true, v2, "seeded"},
		{"untouched, Secret unchanged", v1, false, v1, "up to date"},
		{"untouched, Secret rotated", v1, true, v2, "updated"},
		{"changed locally, Secret unchanged", login, false, login, "kept"},
		{"changed locally, Secret rotated", login, true, login, "kept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			source := filepath.Join(dir, "secret", "auth.json")
			target := filepath.Join(dir, "home", ".local", "share", "opencode", "auth.json")
			write(t, source, v1)
			if tc.local != "" {
				// The first start seeded v1; OpenCode may have rewritten it since.
				if _, err := seed.SeedAuth(source, target); err != nil {
					t.Fatal(err)
				}
				write(t, target, tc.local)
			}
			if tc.rotated {
				write(t, source, v2)
			}
			outcome, err := seed.SeedAuth(source, target)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(outcome, tc.outcome) {
				t.Errorf("outcome %q, want %q", outcome, tc.outcome)
			}
			b, err := os.ReadFile(target)
			if err != nil || string(b) != tc.want {
				t.Errorf("auth.json holds %q (%v), want %q", b, err, tc.want)
			}
			if fi, _ := os.Stat(target); tc.local == "" && fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".*tmp-*")); len(leftovers) != 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
			// A later rotation is followed only while the file is what was seeded.
			write(t, source, `{"third":true}`)
			if _, err := seed.SeedAuth(source, target); err != nil {
				t.Fatal(err)
			}
			b, _ = os.ReadFile(target)
			if followed := string(b) == `{"third":true}`; followed != (tc.want != login) {
				t.Errorf("after a second rotation auth.json holds %q", b)
			}
		})
	}
}

func TestAuthWithoutSecretKey(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "auth.json")
	write(t, target, "mine")
	outcome, err := seed.SeedAuth(filepath.Join(dir, "absent", "auth.json"), target)
	if err != nil || !strings.Contains(outcome, "nothing to seed") {
		t.Fatalf("%q, %v", outcome, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "mine" {
		t.Error("a missing Secret key touched the login")
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
