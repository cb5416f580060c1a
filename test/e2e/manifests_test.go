package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/angryninja/opencode-injector/webhook"
)

// kustomizeDirs are all directories under deploy/ with a kustomization.yaml.
func kustomizeDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 9 {
		t.Fatalf("found only %d kustomize directories under deploy/", len(dirs))
	}
	return dirs
}

// fluxKustomization is the part of a Flux Kustomization (from a ks.yaml)
// that decides how its app/ directory is applied.
type fluxKustomization struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Path            string `json:"path"`
		TargetNamespace string `json:"targetNamespace"`
		SourceRef       struct {
			Name string `json:"name"`
		} `json:"sourceRef"`
		PostBuild struct {
			Substitute map[string]string `json:"substitute"`
		} `json:"postBuild"`
	} `json:"spec"`
}

// fluxKustomizations reads every Flux Kustomization of every ks.yaml.
func fluxKustomizations(t *testing.T) []fluxKustomization {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy", "flux", "kubernetes", "apps", "*", "*", "ks.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("ks.yaml files: %v, %v", files, err)
	}
	var out []fluxKustomization
	for _, f := range files {
		docs, err := webhook.SplitYAML(mustRead(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, doc := range docs {
			var k fluxKustomization
			if err := yaml.Unmarshal(doc, &k); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if k.Kind == "Kustomization" {
				out = append(out, k)
			}
		}
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sourceDir maps a Flux Kustomization's path to this repository: the
// cluster's GitRepository (flux-system) holds deploy/flux's tree, this
// project's GitRepository holds the repository itself.
func sourceDir(k fluxKustomization) string {
	if k.Spec.SourceRef.Name == "flux-system" {
		return filepath.Join(root, "deploy", "flux", k.Spec.Path)
	}
	return filepath.Join(root, k.Spec.Path)
}

var substitution = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// TestEveryKsPathBuilds: every Flux Kustomization points at a directory
// that kustomize builds, and its postBuild variables are all defined.
func TestEveryKsPathBuilds(t *testing.T) {
	for _, k := range fluxKustomizations(t) {
		docs, err := testenv.Render(sourceDir(k))
		if err != nil {
			t.Errorf("Kustomization %s: %v", k.Metadata.Name, err)
			continue
		}
		for _, doc := range docs {
			for _, m := range substitution.FindAllStringSubmatch(string(doc), -1) {
				if _, ok := k.Spec.PostBuild.Substitute[m[1]]; !ok {
					t.Errorf("Kustomization %s: ${%s} is not in postBuild.substitute", k.Metadata.Name, m[1])
				}
			}
		}
	}
}

// TestManifestsValidateServerSide applies every document every kustomize
// directory under deploy/ renders, server-side and dry-run, against the
// real CRDs of cert-manager, Gateway API, Flux and External Secrets, with
// Flux's postBuild substitution and targetNamespace applied the way
// kustomize-controller would.
func TestManifestsValidateServerSide(t *testing.T) {
	for _, ns := range []string{"opencode-system", "opencode", "network", "flux-system"} {
		ensureNamespace(t, ns)
	}
	applied := map[string]fluxKustomization{}
	for _, k := range fluxKustomizations(t) {
		applied[sourceDir(k)] = k
	}
	for _, dir := range kustomizeDirs(t) {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			docs, err := testenv.Render(dir)
			if err != nil {
				t.Fatal(err)
			}
			k := applied[dir]
			for _, doc := range docs {
				text := substitution.ReplaceAllStringFunc(string(doc), func(v string) string {
					if val, ok := k.Spec.PostBuild.Substitute[v[2:len(v)-1]]; ok {
						return val
					}
					return v
				})
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
					t.Fatal(err)
				}
				if k.Spec.TargetNamespace != "" {
					u.SetNamespace(k.Spec.TargetNamespace)
				}
				if u.GetKind() == "MutatingWebhookConfiguration" {
					// The test environment registered this one with a URL; apply beside it.
					u.SetName(u.GetName() + "-dry-run")
				}
				if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner("kustomize-controller"), client.ForceOwnership, client.DryRunAll); err != nil {
					t.Errorf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
				}
			}
		})
	}
}

// secretLeaks finds what must never be committed in text: a Secret that is
// not SOPS-encrypted, a GitHub token, a private key.
var secretLeaks = []struct {
	what    string
	pattern *regexp.Regexp
}{
	{"a GitHub token", regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`)},
	{"a private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
	{"a plaintext Secret", regexp.MustCompile(`(?m)^kind:\s*Secret\s*$`)},
}

// leaks returns what text leaks; a Secret counts only when its document
// carries no SOPS encryption.
func leaks(text string) []string {
	var found []string
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$|^\x60\x60\x60.*$`).Split(text, -1) {
		for _, l := range secretLeaks {
			if !l.pattern.MatchString(doc) {
				continue
			}
			if l.what == "a plaintext Secret" && strings.Contains(doc, "ENC[") && strings.Contains(doc, "sops:") {
				continue
			}
			found = append(found, l.what)
		}
	}
	return found
}

func TestLeakCheckerCatchesLeaks(t *testing.T) {
	for _, bad := range []string{
		"apiVersion: v1\nkind: Secret\nstringData:\n  OPENCODE_SERVER_PASSWORD: hunter2\n",
		"token: ghp_abcdefghijklmnopqrstuvwxyz0123456789\n",
		"-----BEGIN EC PRIVATE KEY-----\n",
	} {
		if len(leaks(bad)) == 0 {
			t.Errorf("not caught: %q", bad)
		}
	}
	sops := "apiVersion: v1\nkind: Secret\nstringData:\n  OPENCODE_SERVER_PASSWORD: ENC[AES256_GCM,data:abc,type:str]\nsops:\n  age: []\n"
	if got := leaks(sops); len(got) != 0 {
		t.Errorf("a SOPS-encrypted Secret was flagged: %v", got)
	}
}

// TestNoPlaintextSecrets: no file under deploy/ or docs/, nor the README,
// holds a Secret value in plaintext.
func TestNoPlaintextSecrets(t *testing.T) {
	files := []string{filepath.Join(root, "README.md")}
	for _, dir := range []string{"deploy", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		for _, what := range leaks(string(mustRead(t, f))) {
			t.Errorf("%s holds %s", f, what)
		}
	}
}
