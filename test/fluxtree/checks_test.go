package fluxtree_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/test/testenv"
)

// checkPatchedByParent: the child Kustomization in the cluster holds
// everything its ks.yaml sets, and the parent's patch too. The parent's
// spec.patches replace the child's own, so an example relying on them
// fails here.
func (f *fixture) checkPatchedByParent(ks example, parent *unstructured.Unstructured) {
	f.t.Helper()
	got := f.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", ks.namespace, ks.name)
	gotSpec, _ := got.Object["spec"].(map[string]any)
	if owner := got.GetLabels()[ownerLabel]; owner != parentName {
		f.t.Errorf("%s: owned by %q, want the parent %s", ks, owner, parentName)
	}

	// The parent's settings reached the child.
	parentPatch := parentKustomizationPatch(f.t, parent)
	for _, msg := range contains("spec", parentPatch["spec"], gotSpec) {
		f.t.Errorf("%s: the parent's patch did not arrive: %s", ks, msg)
	}

	// What the child says itself survived: a setting there that the
	// parent's patch replaces (its own spec.patches) is lost.
	for _, msg := range contains("spec", ks.spec, gotSpec) {
		f.t.Errorf("%s: set in its ks.yaml but lost under a parent that patches its children: %s; set it as a HelmRelease value or a postBuild variable with a default instead", ks, msg)
	}
}

// parentKustomizationPatch is the strategic-merge patch the parent applies
// to every child Kustomization.
func parentKustomizationPatch(t *testing.T, parent *unstructured.Unstructured) map[string]any {
	t.Helper()
	patches, _, _ := unstructured.NestedSlice(parent.Object, "spec", "patches")
	for _, p := range patches {
		entry, _ := p.(map[string]any)
		target, _ := entry["target"].(map[string]any)
		if target["kind"] != "Kustomization" {
			continue
		}
		var patch map[string]any
		if err := yaml.Unmarshal([]byte(fmt.Sprint(entry["patch"])), &patch); err != nil {
			t.Fatalf("the parent's Kustomization patch: %v", err)
		}
		return patch
	}
	t.Fatal("the parent patches no Kustomization")
	return nil
}

// checkEverythingArrived: every object the example's path renders, after
// postBuild substitution (the Kustomization's own variables over the
// cluster's settings, as Flux ranks them), is in the cluster with every
// field it sets, owned by that Kustomization.
func (f *fixture) checkEverythingArrived(ks example) {
	f.t.Helper()
	path, _ := ks.spec["path"].(string)
	docs, err := testenv.Render(filepath.Join(f.flux, filepath.FromSlash(strings.TrimPrefix(path, "./"))))
	if err != nil {
		f.t.Fatal(err)
	}
	vars := map[string]string{}
	if ks.namespace == "opencode-system" {
		maps.Copy(vars, clusterSettings)
	}
	maps.Copy(vars, ks.substitute())
	for _, doc := range docs {
		text, missing := testenv.Substitute(string(doc), vars)
		if len(missing) > 0 {
			f.t.Errorf("%s: variables neither set nor defaulted: %v", ks, missing)
			continue
		}
		want := f.object(text)
		ns := ks.targetNamespace()
		if clusterScoped(want.GetKind()) {
			ns = ""
		}
		want.SetNamespace(ns)
		got := f.get(want.GetAPIVersion(), want.GetKind(), ns, want.GetName())
		what := fmt.Sprintf("%s %s/%s", want.GetKind(), ns, want.GetName())
		if owner := got.GetLabels()[ownerLabel]; owner != ks.name {
			f.t.Errorf("%s: owned by %q, want %s", what, owner, ks.name)
		}
		for _, msg := range contains("", want.Object, got.Object) {
			f.t.Errorf("%s from %s did not arrive as written: %s", what, ks, msg)
		}
		if b, _ := json.Marshal(got.Object); strings.Contains(string(b), "${") {
			f.t.Errorf("%s: a postBuild variable is left unsubstituted: %s", what, b)
		}
	}
	f.t.Logf("%s: every object it renders arrived (%d)", ks, len(docs))
}

func clusterScoped(kind string) bool {
	return kind == "Namespace" || strings.HasPrefix(kind, "Cluster")
}

// checkHelmReleaseSettings spells out what the generic comparison covers
// for the settings a cluster changes: the injector's variables, one left
// to its default and two overridden by cluster-settings, and the parent's
// HelmRelease defaults merged with each release's own.
func (f *fixture) checkHelmReleaseSettings() {
	f.t.Helper()
	hr := f.get("helm.toolkit.fluxcd.io/v2", "HelmRelease", "opencode-system", "opencode-injector")
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"values", "networkPolicy", "enabled"}, true},                            // cluster-settings
		{[]string{"values", "networkPolicy", "controlPlaneCIDRs"}, []any{"10.10.0.0/24"}}, // cluster-settings
		{[]string{"values", "monitoring", "serviceMonitor", "enabled"}, false},            // the default
		{[]string{"values", "injection", "allowedGitHosts"}, []any{"github.com"}},         // a plain value
		{[]string{"install", "remediation", "retries"}, int64(3)},                         // the release's own
		{[]string{"install", "crds"}, "CreateReplace"},                                    // the parent's default
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(hr.Object, append([]string{"spec"}, c.path...)...)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			f.t.Errorf("HelmRelease opencode-system/opencode-injector spec.%s = %v, want %v", strings.Join(c.path, "."), got, c.want)
		}
	}
	for name, repo := range map[string]string{
		"opencode-flux": "angryninja/k8s-cluster",
		"opencode-ha":   "https://github.com/angryninja/home-assistant-config.git",
	} {
		hr := f.get("helm.toolkit.fluxcd.io/v2", "HelmRelease", "opencode", name)
		got, _, _ := unstructured.NestedString(hr.Object, "spec", "values", "controllers", "opencode", "annotations", "opencode.angryninja.cloud/repo")
		if got != repo {
			f.t.Errorf("HelmRelease opencode/%s: repo annotation %q, want %q (its ks.yaml's WORKSPACE_REPO)", name, got, repo)
		}
		if crds, _, _ := unstructured.NestedString(hr.Object, "spec", "upgrade", "crds"); crds != "CreateReplace" {
			f.t.Errorf("HelmRelease opencode/%s: the parent's upgrade.crds did not arrive (%q)", name, crds)
		}
	}
}

// checkOwnedOnce: no object is in two Kustomizations' inventories, and each
// of the examples' Namespaces is in exactly one, which its owner label
// names.
func (f *fixture) checkOwnedOnce(namespaces ...string) {
	f.t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion("kustomize.toolkit.fluxcd.io/v1")
	list.SetKind("KustomizationList")
	if err := f.c.List(f.ctx, list); err != nil {
		f.t.Fatal(err)
	}
	owners := map[string][]string{} // inventory id → Kustomizations
	for _, ks := range list.Items {
		entries, _, _ := unstructured.NestedSlice(ks.Object, "status", "inventory", "entries")
		for _, e := range entries {
			id, _ := e.(map[string]any)["id"].(string)
			owners[id] = append(owners[id], ks.GetNamespace()+"/"+ks.GetName())
		}
	}
	for id, ks := range owners {
		if len(ks) > 1 {
			f.t.Errorf("%s is owned by %d Kustomizations: %v", id, len(ks), ks)
		}
	}
	for _, ns := range namespaces {
		id := "_" + ns + "__Namespace"
		got := f.get("v1", "Namespace", "", ns)
		if len(owners[id]) != 1 || owners[id][0] != fluxSystem+"/"+got.GetLabels()[ownerLabel] {
			f.t.Errorf("Namespace %s: in the inventories of %v, owner label %q; want exactly one, the one its label names", ns, owners[id], got.GetLabels()[ownerLabel])
		}
	}
}
