package e2e

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// TestOutageFailsClosed registers deploy/'s webhook once more, pointed at a
// port where nothing listens (the injector down): a labeled Deployment is
// refused with the webhook's error and never admitted un-injected, while
// unlabeled Deployments and the injector's own namespace are unaffected.
func TestOutageFailsClosed(t *testing.T) {
	cfg, err := testenv.WebhookConfiguration(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range cfg.Webhooks {
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("webhook %s: failurePolicy %v, want Fail", w.Name, w.FailurePolicy)
		}
		// The API server gives a webhook at most 30s; a short timeout keeps
		// a hung injector from holding every workspace update that long.
		if w.TimeoutSeconds == nil || *w.TimeoutSeconds > 10 {
			t.Errorf("webhook %s: timeoutSeconds %v, want at most 10", w.Name, w.TimeoutSeconds)
		}
	}
	down := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector-down"}, Webhooks: cfg.Webhooks}
	for i := range down.Webhooks {
		down.Webhooks[i].ClientConfig, down.Webhooks[i].TimeoutSeconds = unreachable(t, "/inject")
	}
	createUntilCleanup(t, down)

	ns := namespace(t, nil)
	labeled := fixture(t, "flux", ns)
	waitFor(t, func() bool {
		err := env.Client.Create(ctx, labeled.DeepCopy(), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "failed calling webhook")
	}, "the API server to call the unreachable webhook")
	err = env.Client.Create(ctx, labeled)
	if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Fatalf("a labeled Deployment was not refused with the webhook's error: %v", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(labeled), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a labeled Deployment was admitted during the outage: %v", err)
	}

	unlabeled := fixture(t, "flux", ns)
	delete(unlabeled.Labels, contract.LabelInject)
	if err := env.Client.Create(ctx, unlabeled); err != nil {
		t.Errorf("an unlabeled Deployment was blocked by the outage: %v", err)
	}
	ensureNamespace(t, "opencode-system")
	own := fixture(t, "flux", "opencode-system")
	own.Name = "own-" + ns
	if err := env.Client.Create(ctx, own); err != nil {
		t.Errorf("the injector's own namespace was blocked by the outage: %v", err)
	}
}

// unreachable is a webhook client config for an address where nothing
// listens (the injector down), with a short timeout.
func unreachable(t *testing.T, path string) (admissionregistrationv1.WebhookClientConfig, *int32) {
	t.Helper()
	url := "https://" + testenv.FreeAddr(t) + path
	return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.Env.WebhookInstallOptions.LocalServingCAData}, ptr.To[int32](2)
}

// createUntilCleanup creates obj and deletes it when the test ends.
func createUntilCleanup(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })
}
