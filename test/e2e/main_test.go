// Package e2e runs the webhook against a real kube-apiserver and etcd
// (envtest), registered from deploy/'s MutatingWebhookConfiguration.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
)

var (
	env      *testenv.Env
	root     string
	settings = injection.DefaultSettings(injection.ImageRepository + ":v0.0.0-e2e")
)

func TestMain(m *testing.M) {
	var err error
	if root, err = testenv.Root(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	crds, err := testenv.CRDFiles()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if env, err = testenv.Start(root, settings, crds...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop:", err)
	}
	os.Exit(code)
}

// warningClient is a client whose warnings the test can read.
func warningClient(t *testing.T) (client.Client, *testenv.Warnings) {
	t.Helper()
	return testenv.WarningClient(t, env.Config)
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// ensureNamespace creates a namespace with a fixed name unless it exists.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// rendered is the app-template chart's output for a fixture.
func rendered(t *testing.T, name string) []byte {
	t.Helper()
	return mustRead(t, filepath.Join(root, "test", "fixtures", "app-template", name+".rendered.yaml"))
}

// fixture is the Deployment of a rendered app-template fixture, placed in ns.
func fixture(t *testing.T, name, ns string) *appsv1.Deployment {
	t.Helper()
	d, err := manifest.FirstDeployment(rendered(t, name))
	if err != nil {
		t.Fatal(err)
	}
	d.Namespace = ns
	return d
}
