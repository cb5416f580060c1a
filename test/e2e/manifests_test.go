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

	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
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

// renderDir renders a kustomize directory; a Component is rendered as an
// overlay of deploy/ that uses it, the way a user enables it.
func renderDir(t *testing.T, dir string) ([][]byte, error) {
	t.Helper()
	if !strings.Contains(string(mustRead(t, filepath.Join(dir, "kustomization.yaml"))), "kind: Component") {
		return testenv.Render(dir)
	}
	overlay := t.TempDir()
	base, _ := filepath.Rel(overlay, filepath.Join(root, "deploy"))
	component, _ := filepath.Rel(overlay, dir)
	k := "resources: [" + base + "]\ncomponents: [" + component + "]\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.Render(overlay)
}

// fluxKustomization is the part of a Flux Kustomization (from a ks.yaml)
// that decides how its app/ directory is applied.
type fluxKustomization struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Path            string `json:"path"`
		TargetNamespace string `json:"targetNamespace"`
		SourceRef       struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"sourceRef"`
		DependsOn []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"dependsOn"`
		CommonMetadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"commonMetadata"`
		PostBuild struct {
			Substitute map[string]string `json:"substitute"`
		} `json:"postBuild"`
		Patches []any `json:"patches"`
	} `json:"spec"`
}

// fluxKustomizations reads every Flux Kustomization of every ks.yaml.
func fluxKustomizations(t *testing.T) []fluxKustomization {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy", "flux", "kubernetes", "apps", "*", "*", "ks.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("ks.yaml files: %v, %v", files, err)
	}
	var out []fluxKustomization
	for _, f := range files {
		docs, err := manifest.SplitYAML(mustRead(t, f))
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

// TestEveryKsPathBuilds: every Flux Kustomization points at a directory
// that kustomize builds, and its postBuild variables are all defined or
// carry their default.
func TestEveryKsPathBuilds(t *testing.T) {
	for _, k := range fluxKustomizations(t) {
		docs, err := testenv.Render(sourceDir(k))
		if err != nil {
			t.Errorf("Kustomization %s: %v", k.Metadata.Name, err)
			continue
		}
		for _, doc := range docs {
			_, missing := testenv.Substitute(string(doc), k.Spec.PostBuild.Substitute)
			for _, v := range missing {
				t.Errorf("Kustomization %s: ${%s} is not in postBuild.substitute and has no default", k.Metadata.Name, v)
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
			docs, err := renderDir(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			k := applied[dir]
			for _, doc := range docs {
				text, _ := testenv.Substitute(string(doc), k.Spec.PostBuild.Substitute)
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
					t.Fatal(err)
				}
				if k.Spec.TargetNamespace != "" {
					u.SetNamespace(k.Spec.TargetNamespace)
				}
				if u.GetKind() == "MutatingWebhookConfiguration" || u.GetKind() == "ValidatingWebhookConfiguration" {
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

// leaks returns what text leaks; a Secret counts unless its document
// carries SOPS encryption. Even a ServiceAccount token Secret without data
// counts: a repository's hook cannot tell it from a forgotten value.
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
	if len(leaks("apiVersion: v1\nkind: Secret\ntype: kubernetes.io/service-account-token\nmetadata:\n  name: scraper\n")) == 0 {
		t.Error("a ServiceAccount token Secret, even without data, was not caught")
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

// clusterKustomizations are the Kustomizations the examples depend on that
// the cluster itself provides, by namespace/name; the README's table of
// cluster-specific names lists each.
var clusterKustomizations = []string{"cert-manager/cert-manager", "external-secrets/external-secrets-stores"}

// TestFluxWiring: the examples' Kustomizations are declared the way current
// onedr0p/bjw-s home-ops clusters do: each in its app's namespace (its
// targetNamespace), with commonMetadata, and every dependsOn entry names the
// namespace of the Kustomization it waits for, which is either one of the
// examples' or one the README says the cluster provides.
func TestFluxWiring(t *testing.T) {
	ks := fluxKustomizations(t)
	declared := map[string]bool{}
	for _, k := range ks {
		declared[k.Metadata.Namespace+"/"+k.Metadata.Name] = true
	}
	readme := string(mustRead(t, filepath.Join(root, "README.md")))
	for _, c := range clusterKustomizations {
		ns, name, _ := strings.Cut(c, "/")
		declared[c] = true
		if !strings.Contains(readme, "`"+name+"` in `"+ns+"`") {
			t.Errorf("the README does not name the cluster's Kustomization `%s` in `%s`", name, ns)
		}
	}
	for _, k := range ks {
		name := k.Metadata.Name
		if k.Metadata.Namespace == "" || k.Metadata.Namespace == "flux-system" {
			t.Errorf("Kustomization %s lives in %q, not in its app's namespace", name, k.Metadata.Namespace)
		}
		if k.Spec.TargetNamespace != "" && k.Spec.TargetNamespace != k.Metadata.Namespace {
			t.Errorf("Kustomization %s lives in %s but applies to %s", name, k.Metadata.Namespace, k.Spec.TargetNamespace)
		}
		if len(k.Spec.CommonMetadata.Labels) == 0 {
			t.Errorf("Kustomization %s has no commonMetadata", name)
		}
		if k.Spec.SourceRef.Namespace == "" {
			t.Errorf("Kustomization %s: sourceRef without namespace", name)
		}
		for _, d := range k.Spec.DependsOn {
			if d.Namespace == "" {
				t.Errorf("Kustomization %s: dependsOn %s without namespace: it resolves in %s only", name, d.Name, k.Metadata.Namespace)
			} else if !declared[d.Namespace+"/"+d.Name] {
				t.Errorf("Kustomization %s: dependsOn %s/%s is neither an example's nor a cluster Kustomization the README names", name, d.Namespace, d.Name)
			}
		}
	}
}

// TestNoSpecPatches: no example customises through a Flux Kustomization's
// spec.patches, which a cluster-level Kustomization that patches its
// children (as the home-ops repositories do) replaces wholesale; values and
// postBuild variables with defaults survive it.
func TestNoSpecPatches(t *testing.T) {
	for _, k := range fluxKustomizations(t) {
		if len(k.Spec.Patches) > 0 {
			t.Errorf("Kustomization %s/%s customises through spec.patches", k.Metadata.Namespace, k.Metadata.Name)
		}
	}
}

// TestOneOwnerPerNamespace: each Namespace of the examples is declared
// once in the Flux tree, and nothing the Kustomizations apply declares it
// again (the injector's chart renders none).
func TestOneOwnerPerNamespace(t *testing.T) {
	owners := map[string][]string{}
	for _, dir := range kustomizeDirs(t) {
		rel, _ := filepath.Rel(root, dir)
		if !strings.HasPrefix(rel, filepath.Join("deploy", "flux")) {
			continue
		}
		docs, err := renderDir(t, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			var head struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatal(err)
			}
			if head.Kind == "Namespace" {
				owners[head.Metadata.Name] = append(owners[head.Metadata.Name], rel)
			}
		}
	}
	for _, ns := range []string{"opencode-system", "opencode"} {
		if len(owners[ns]) != 1 {
			t.Errorf("Namespace %s is declared by %v, want exactly one Kustomization", ns, owners[ns])
		}
	}
}
