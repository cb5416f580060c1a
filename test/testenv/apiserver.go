package testenv

import (
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// APIServer starts kube-apiserver and etcd with the CRDs in crdFiles and no
// webhook, for tests that bring their own controllers; they stop when t
// ends.
func APIServer(t testing.TB, root string, crdFiles []string) (*envtest.Environment, *rest.Config) {
	t.Helper()
	assets, err := Assets(root)
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crdFiles, ErrorIfPathMissing: true},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop kube-apiserver and etcd: %v", err)
		}
	})
	return env, cfg
}
