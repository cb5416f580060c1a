package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/webhook"
)

// echoPatches is the create benchmark's patch-echo webhook: it decodes the
// Deployment, as any webhook must, and answers the patch our handler
// returns for it, computed before the run, so it does no injection work.
type echoPatches struct {
	decoder admission.Decoder
	mu      sync.RWMutex
	patches map[string][]byte // by namespace/name
}

func (e *echoPatches) Handle(_ context.Context, req admission.Request) admission.Response {
	var d appsv1.Deployment
	if err := e.decoder.DecodeRaw(req.Object, &d); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	e.mu.RLock()
	patch, ok := e.patches[req.Namespace+"/"+req.Name]
	e.mu.RUnlock()
	if !ok {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("no patch computed for %s/%s", req.Namespace, req.Name))
	}
	resp := admission.Allowed("")
	resp.Patch, resp.PatchType = patch, ptr.To(admissionv1.PatchTypeJSONPatch)
	return resp
}

// precompute stores our handler's patch for d as the API server will send
// it: defaulted (a dry-run create in the namespace defaults, where no
// webhook runs), without the fields the API server sets after admission.
func (e *echoPatches) precompute(ctx context.Context, b *testing.B, c client.Client, d *appsv1.Deployment, defaults string) {
	b.Helper()
	sent := d.DeepCopy()
	sent.Namespace = defaults
	if err := c.Create(ctx, sent, client.DryRunAll); err != nil {
		b.Fatal(err)
	}
	sent.Namespace = d.Namespace
	sent.UID, sent.ResourceVersion, sent.Generation, sent.ManagedFields = "", "", 0, nil
	sent.CreationTimestamp = metav1.Time{}
	raw, err := json.Marshal(sent)
	if err != nil {
		b.Fatal(err)
	}
	resp := (&webhook.Handler{Settings: benchSettings}).Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "precompute", Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
		Operation: admissionv1.Create, Namespace: d.Namespace, Name: d.Name, Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed || len(resp.Patch) == 0 {
		b.Fatalf("our handler answers no patch for %s/%s", d.Namespace, d.Name)
	}
	e.mu.Lock()
	e.patches[d.Namespace+"/"+d.Name] = resp.Patch
	e.mu.Unlock()
}
