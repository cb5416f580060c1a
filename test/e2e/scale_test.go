package e2e

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/test/testenv"
)

// scaleTo changes replicas through the scale subresource, as kubectl scale
// and a HorizontalPodAutoscaler do.
func scaleTo(d *appsv1.Deployment, replicas int32) error {
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	return env.Client.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(scale))
}

func TestScalingAWorkspaceAboveOneIsRefused(t *testing.T) {
	ns := namespace(t, map[string]string{contract.LabelWorkspaces: "true"})
	ws := fixture(t, "flux", ns)
	if err := env.Client.Create(ctx, ws); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		err := scaleTo(ws, 2)
		return err != nil && strings.Contains(err.Error(), "runs exactly one pod")
	}, "the scale guard to refuse 2 replicas")
	if got := get(t, ws); got.Spec.Replicas == nil || *got.Spec.Replicas != 1 {
		t.Errorf("replicas %v after a refused scale", got.Spec.Replicas)
	}
	for _, r := range []int32{0, 1} {
		if err := scaleTo(ws, r); err != nil {
			t.Errorf("scaling a workspace to %d: %v", r, err)
		}
	}
	plain := fixture(t, "flux", ns)
	plain.Name = "plain"
	delete(plain.Labels, contract.LabelInject)
	if err := env.Client.Create(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if err := scaleTo(plain, 3); err != nil {
		t.Errorf("an unlabeled Deployment in a workspace namespace could not scale: %v", err)
	}
}

// An outage of the injector holds scaling above one replica in workspace
// namespaces only: scaling to 0 or 1 (stopping a workspace) never waits.
func TestScaleGuardOutageStaysInWorkspaceNamespaces(t *testing.T) {
	cfg, err := testenv.ValidatingWebhookConfiguration(root)
	if err != nil {
		t.Fatal(err)
	}
	down := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector-scale-down"}, Webhooks: cfg.Webhooks}
	for i := range down.Webhooks {
		down.Webhooks[i].ClientConfig, down.Webhooks[i].TimeoutSeconds = unreachable(t, "/scale")
	}
	createUntilCleanup(t, down)

	workspaces := namespace(t, map[string]string{contract.LabelWorkspaces: "true"})
	other := namespace(t, nil)
	var inWorkspaces, elsewhere *appsv1.Deployment
	for _, ns := range []string{workspaces, other} {
		d := fixture(t, "flux", ns)
		delete(d.Labels, contract.LabelInject)
		if err := env.Client.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		if ns == workspaces {
			inWorkspaces = d
		} else {
			elsewhere = d
		}
	}
	waitFor(t, func() bool {
		err := scaleTo(inWorkspaces, 2)
		return err != nil && strings.Contains(err.Error(), "failed calling webhook")
	}, "scaling above one in a workspace namespace to wait for the injector")
	if err := scaleTo(inWorkspaces, 0); err != nil {
		t.Errorf("stopping a workspace (scale to 0) waited for the injector: %v", err)
	}
	if err := scaleTo(elsewhere, 2); err != nil {
		t.Errorf("scaling outside workspace namespaces was blocked by the outage: %v", err)
	}
}
