package e2e

import (
	"os"
	"testing"

	"k8s.io/client-go/discovery"
)

// TestServerVersion names the Kubernetes version this run of the suite
// proves. `make test` runs the suite twice: on the newest minor the tests
// build (1.35) and on the oldest the README claims (1.30), each with
// E2E_KUBERNETES_VERSION set, so a run on other binaries than it says fails.
func TestServerVersion(t *testing.T) {
	d, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := d.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver %s", v.GitVersion)
	if want := os.Getenv("E2E_KUBERNETES_VERSION"); want != "" && v.GitVersion != "v"+want {
		t.Fatalf("kube-apiserver is %s, want v%s (E2E_KUBERNETES_VERSION)", v.GitVersion, want)
	}
}
