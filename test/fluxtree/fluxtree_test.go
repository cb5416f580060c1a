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
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
	art, err := newArtifact(f.flux, "testdata")
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
