package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/provision"
)

// ScalePath is where the API server sends reviews of deployments/scale;
// deploy/ names it in the ValidatingWebhookConfiguration.
const ScalePath = "/scale"

// ScaleGuard refuses to scale a workspace above one replica. kubectl scale
// and HorizontalPodAutoscalers change replicas through the scale
// subresource, whose Scale object carries no labels, so the mutating
// webhook's objectSelector never sees them: the guard looks the Deployment
// up instead.
type ScaleGuard struct {
	// Deployments reads the manager's cache, which holds labeled
	// Deployments only (their metadata: the guard reads the label): any
	// other is simply not found.
	Deployments client.Reader
	// Live confirms a cache miss with the API server: a Deployment labeled a
	// moment ago may not have reached the cache yet.
	Live client.Reader
}

var _ admission.Handler = (*ScaleGuard)(nil)

// Handle implements admission.Handler.
func (g *ScaleGuard) Handle(ctx context.Context, req admission.Request) admission.Response {
	return withoutTokens(g.handle(ctx, req))
}

func (g *ScaleGuard) handle(ctx context.Context, req admission.Request) admission.Response {
	if req.SubResource != "scale" || req.Operation != admissionv1.Update {
		return admission.Allowed("not a scale update")
	}
	var scale autoscalingv1.Scale
	if err := json.Unmarshal(req.Object.Raw, &scale); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode Scale: %w", err))
	}
	if scale.Spec.Replicas <= 1 {
		return admission.Allowed("")
	}
	d := provision.DeploymentMetadata()
	key := client.ObjectKey{Namespace: req.Namespace, Name: req.Name}
	err := g.Deployments.Get(ctx, key, d)
	if apierrors.IsNotFound(err) && g.Live != nil {
		err = g.Live.Get(ctx, key, d)
	}
	switch {
	case apierrors.IsNotFound(err):
		return admission.Allowed("not a workspace")
	case err != nil:
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("look up deployment %s/%s: %w", req.Namespace, req.Name, err))
	case d.Labels[contract.LabelInject] != contract.LabelInjectEnabled:
		return admission.Allowed("not a workspace")
	}
	return admission.Denied(fmt.Sprintf("deployment %s is an OpenCode workspace (label %s): it runs exactly one pod, since its ReadWriteOnce claim attaches to one node; "+
		"scale it to 0 or 1, and do not attach a HorizontalPodAutoscaler to it", req.Name, contract.LabelInject))
}
