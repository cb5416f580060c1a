// Package fluxtree_test runs deploy/flux through the real kustomize-controller
// (built from its Go module, run as its own process) on a real API server,
// under a cluster-level Kustomization that patches every child Kustomization
// the way onedr0p/home-ops and bjw-s-labs/home-ops do, and checks what reaches
// the cluster: every object of the examples with every setting, the
// substitutions (a default and a cluster override), and one owner for each
// object, Namespaces included.
//
// No helm-controller or source-controller runs: the HelmReleases are checked
// as applied, never installed or marked Ready. The test is the GitRepository's
// source: it serves the artifact and writes the GitRepository's
// status.artifact, as source-controller would.
package fluxtree_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/test/testenv"
)

// clusterSettings is the cluster's own cluster-settings ConfigMap in
// opencode-system, which the parent adds to every child's substituteFrom:
// two of the injector's variables overridden, the third left to its default.
var clusterSettings = map[string]string{
	"CONTROL_PLANE_CIDR":               "10.10.0.0/24",
	"OPENCODE_INJECTOR_NETWORK_POLICY": "true",
}

const (
	ownerLabel = "kustomize.toolkit.fluxcd.io/name"
	parentName = "cluster-apps"
	fluxSystem = "flux-system"
)

func TestFluxTreeUnderAParentThatReplacesPatches(t *testing.T) {
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetLogger(logr.Discard()) // envtest's; the controller logs on its own
	bin := kustomizeController(t, root)
	f := startCluster(t, root)
	startKustomizeController(t, bin, f.kubeconfig)

	parent := f.readYAML(filepath.Join("testdata", "kubernetes", "flux", "cluster", "ks.yaml"))
	if err := f.c.Create(f.ctx, parent); err != nil {
		t.Fatalf("create the parent Kustomization: %v", err)
	}
	f.waitReady(fluxSystem, parentName)

	examples := f.exampleKustomizations()
	for _, ks := range examples {
		f.checkPatchedByParent(ks, parent)
	}

	// The workspaces wait for the injector's Kustomization, which is Ready
	// only once helm-controller has installed the chart and cert-manager
	// has filled the webhooks' caBundle; neither runs here. Seen waiting,
	// the workspaces are then released by removing that one dependency,
	// as an operator would with `kubectl patch`, so the controller applies
	// them; everything else in them is as the parent left it.
	injector := findExample(t, examples, "opencode-system", "opencode-injector")
	f.waitApplied(injector)
	for _, ks := range examples {
		if ks.namespace == "opencode" {
			f.waitNotReady(ks, "DependencyNotReady", "opencode-system/opencode-injector")
			f.dropDependency(ks, "opencode-injector")
		}
	}
	for _, ks := range examples {
		f.waitApplied(ks)
	}

	for _, ks := range examples {
		f.checkEverythingArrived(ks)
	}
	f.checkHelmReleaseSettings()
	f.checkOwnedOnce("opencode-system", "opencode")
}

// fixture is the running cluster and the artifact it reconciles.
type fixture struct {
	t          *testing.T
	ctx        context.Context
	c          client.Client
	kubeconfig string // the controller's, as its own user
	flux       string // deploy/flux
}

// startCluster starts kube-apiserver and etcd with the CRDs the examples
// need (Flux's, cert-manager's, External Secrets'), serves the artifact and
// creates the GitRepository it belongs to, and the cluster's settings.
func startCluster(t *testing.T, root string) *fixture {
	t.Helper()
	crds, err := testenv.CRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	env, cfg := testenv.APIServer(t, root, crds)
	user, err := env.AddUser(envtest.User{Name: "kustomize-controller", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: t.Context(), c: c, kubeconfig: kubeconfigPath, flux: filepath.Join(root, "deploy", "flux")}

	// The repository: deploy/flux with the rest of a home-ops tree (testdata).
	art, err := newArtifact(f.flux, filepath.Join("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	url := art.serve(t)
	for _, ns := range []string{fluxSystem, "opencode-system"} {
		if err := c.Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-settings", Namespace: "opencode-system"}, Data: clusterSettings}
	if err := c.Create(f.ctx, settings); err != nil {
		t.Fatal(err)
	}
	repo := f.object(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1h
  url: https://git.invalid/home-ops
  ref:
    branch: main
`)
	if err := c.Create(f.ctx, repo); err != nil {
		t.Fatalf("create the GitRepository: %v", err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	repo.Object["status"] = map[string]any{
		"observedGeneration": repo.GetGeneration(),
		"artifact": map[string]any{
			"path":           "gitrepository/flux-system/flux-system/artifact.tar.gz",
			"url":            url,
			"revision":       art.revision,
			"digest":         art.digest,
			"lastUpdateTime": now,
		},
		"conditions": []any{map[string]any{
			"type": "Ready", "status": "True", "reason": "Succeeded",
			"message":            "stored artifact for revision '" + art.revision + "'",
			"lastTransitionTime": now, "observedGeneration": repo.GetGeneration(),
		}},
	}
	if err := c.Status().Update(f.ctx, repo); err != nil {
		t.Fatalf("set the GitRepository's artifact: %v", err)
	}
	return f
}

// example is one Kustomization of deploy/flux (a ks.yaml), as written.
type example struct {
	file      string // relative to deploy/flux
	name      string
	namespace string
	spec      map[string]any
}

func (e example) String() string { return e.namespace + "/" + e.name + " (" + e.file + ")" }

// targetNamespace is where the Kustomization applies its objects.
func (e example) targetNamespace() string {
	if ns, _ := e.spec["targetNamespace"].(string); ns != "" {
		return ns
	}
	return e.namespace
}

// substitute is the Kustomization's own postBuild.substitute.
func (e example) substitute() map[string]string {
	vars := map[string]string{}
	postBuild, _ := e.spec["postBuild"].(map[string]any)
	own, _ := postBuild["substitute"].(map[string]any)
	for k, v := range own {
		vars[k] = fmt.Sprint(v)
	}
	return vars
}

// exampleKustomizations are every ks.yaml under deploy/flux.
func (f *fixture) exampleKustomizations() []example {
	f.t.Helper()
	var out []example
	err := filepath.WalkDir(f.flux, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "ks.yaml" {
			return err
		}
		u := f.readYAML(path)
		rel, _ := filepath.Rel(f.flux, path)
		spec, _ := u.Object["spec"].(map[string]any)
		out = append(out, example{file: rel, name: u.GetName(), namespace: u.GetNamespace(), spec: spec})
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(out) == 0 {
		f.t.Fatalf("no ks.yaml under %s", f.flux)
	}
	return out
}

func findExample(t *testing.T, examples []example, namespace, name string) example {
	t.Helper()
	for _, e := range examples {
		if e.namespace == namespace && e.name == name {
			return e
		}
	}
	t.Fatalf("deploy/flux has no Kustomization %s/%s", namespace, name)
	return example{}
}

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
	f.t.Logf("%s: its %d objects arrived", ks, len(docs))
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

// dropDependency removes one dependsOn entry of a child Kustomization (a
// JSON patch that first checks the entry is the one named).
func (f *fixture) dropDependency(ks example, name string) {
	f.t.Helper()
	u := f.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", ks.namespace, ks.name)
	deps, _, _ := unstructured.NestedSlice(u.Object, "spec", "dependsOn")
	for i, d := range deps {
		if d.(map[string]any)["name"] != name {
			continue
		}
		patch := fmt.Sprintf(`[{"op":"test","path":"/spec/dependsOn/%d/name","value":%q},{"op":"remove","path":"/spec/dependsOn/%d"}]`, i, name, i)
		if err := f.c.Patch(f.ctx, u, client.RawPatch(types.JSONPatchType, []byte(patch))); err != nil {
			f.t.Fatalf("%s: drop the dependency on %s: %v", ks, name, err)
		}
		return
	}
	f.t.Fatalf("%s: no dependency on %s", ks, name)
}

// waitReady waits until the Kustomization is Ready for its generation.
func (f *fixture) waitReady(namespace, name string) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("Kustomization %s/%s Ready", namespace, name), func() error {
		status, reason, msg, err := f.readyCondition(namespace, name)
		if err != nil {
			return err
		}
		if status != "True" {
			return fmt.Errorf("Ready %s %s: %s", status, reason, msg)
		}
		return nil
	})
}

// waitApplied waits until the Kustomization has applied the artifact's
// revision (it may still be running health checks).
func (f *fixture) waitApplied(ks example) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("%s applied", ks), func() error {
		u := f.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", ks.namespace, ks.name)
		entries, _, _ := unstructured.NestedSlice(u.Object, "status", "inventory", "entries")
		if len(entries) == 0 {
			_, reason, msg, _ := f.readyCondition(ks.namespace, ks.name)
			return fmt.Errorf("nothing applied yet (%s: %s)", reason, msg)
		}
		return nil
	})
}

// waitNotReady waits until the Kustomization reports reason, with a message
// that names what.
func (f *fixture) waitNotReady(ks example, reason, what string) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("%s %s on %s", ks, reason, what), func() error {
		status, gotReason, msg, err := f.readyCondition(ks.namespace, ks.name)
		if err != nil {
			return err
		}
		if status != "False" || gotReason != reason || !strings.Contains(msg, what) {
			return fmt.Errorf("Ready %s %s: %s", status, gotReason, msg)
		}
		return nil
	})
}

func (f *fixture) readyCondition(namespace, name string) (status, reason, message string, err error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kustomize.toolkit.fluxcd.io/v1")
	u.SetKind("Kustomization")
	if err := f.c.Get(f.ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		return "", "", "", err
	}
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			if og, _, _ := unstructured.NestedInt64(m, "observedGeneration"); og != u.GetGeneration() {
				return "", "", "", fmt.Errorf("Ready is for generation %d, not %d", og, u.GetGeneration())
			}
			return fmt.Sprint(m["status"]), fmt.Sprint(m["reason"]), fmt.Sprint(m["message"]), nil
		}
	}
	return "", "", "", fmt.Errorf("no Ready condition yet")
}

// eventually retries check until it passes, failing the test with the
// last error after a minute.
func (f *fixture) eventually(what string, check func() error) {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *fixture) get(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if err := f.c.Get(f.ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		f.t.Fatalf("%s %s/%s is not in the cluster: %v", kind, namespace, name, err)
	}
	return u
}

func (f *fixture) object(text string) *unstructured.Unstructured {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
		f.t.Fatalf("decode %s: %v", text, err)
	}
	return u
}

func (f *fixture) readYAML(path string) *unstructured.Unstructured {
	f.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.object(string(b))
}
