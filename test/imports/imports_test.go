// Package imports checks the layout's import rules with the go command's
// own view of the packages (go list -deps -json).
package imports

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/angryninja/opencode-injector"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list is every package of the module (tests left out) and its imports.
func list(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	injection, ok := pkgs[module+"/injection"]
	if !ok {
		t.Fatal("no injection package")
	}
	// The pure injection: no client, no controller-runtime, at any depth;
	// no HTTP of its own (the API types pull net/http in transitively).
	for _, d := range injection.Deps {
		if strings.HasPrefix(d, "sigs.k8s.io/controller-runtime") || strings.HasPrefix(d, "k8s.io/client-go") {
			t.Errorf("injection depends on %s", d)
		}
	}
	if slices.Contains(injection.Imports, "net/http") {
		t.Error("injection imports net/http")
	}
	// The seed shares only the contract with the rest of the module.
	for path, p := range pkgs {
		if path != module+"/seed" && !strings.HasPrefix(path, module+"/seed/") {
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/") && d != module+"/contract" {
				t.Errorf("%s depends on %s", path, d)
			}
		}
	}
	// x509roots/fallback parses Mozilla's roots at init in every process
	// that links it (serve, check, inject): only the seed needs them, and
	// registers them from the bundle package at its own start.
	for path, p := range pkgs {
		if slices.Contains(p.Deps, "golang.org/x/crypto/x509roots/fallback") {
			t.Errorf("%s depends on golang.org/x/crypto/x509roots/fallback, which registers the roots at init; use its bundle package from the seed", path)
		}
	}
	// Tests are not shipped: the release binary carries no test code (the
	// benchmarks' baselines join it only with the benchbaseline tag); the
	// demo in hack/ runs on the tests' control plane.
	for path, p := range pkgs {
		if strings.HasPrefix(path, module+"/test/") || strings.HasPrefix(path, module+"/hack/") {
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/test/") {
				t.Errorf("%s depends on %s", path, d)
			}
		}
	}
	// The process wiring sits on top: only the command, hack/ and the
	// tests build on it.
	app := module + "/cmd/opencode-injector/app"
	for path, p := range pkgs {
		if path == module+"/cmd/opencode-injector" || strings.HasPrefix(path, module+"/hack/") || strings.HasPrefix(path, module+"/test/") {
			continue
		}
		if slices.Contains(p.Deps, app) {
			t.Errorf("%s depends on the process wiring %s", path, app)
		}
	}
}

// TestTheCLIBuildsForMacOS: `inject` runs where admins render their
// manifests, often a Mac. The seed's Linux-only calls (syncfs, writeback,
// page-cache advice) sit behind build tags, so the one binary still builds
// there.
func TestTheCLIBuildsForMacOS(t *testing.T) {
	cmd := exec.Command("go", "build", "-o", "/dev/null", module+"/cmd/opencode-injector")
	cmd.Env = append(cmd.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=darwin go build ./cmd/opencode-injector: %v\n%s", err, out)
	}
}
