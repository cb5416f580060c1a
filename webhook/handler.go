package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
)

// Path is where the API server sends admission reviews; deploy/ names it in
// the MutatingWebhookConfiguration.
const Path = "/inject"

// Outcomes counted by opencode_injector_mutations_total.
const (
	OutcomeInjected   = "injected"
	OutcomeUnchanged  = "unchanged"
	OutcomeUninjected = "un-injected"
	OutcomeDenied     = "denied"
	// OutcomeError is a review the webhook could not answer (an undecodable
	// object, or a replica that does not know its seed image yet); the API
	// server refuses the Deployment, since the webhook fails closed.
	OutcomeError = "error"
)

// Handler is the admission shell around injection.MutateJSON: the
// response, the claim warnings, metrics. Dry-run requests take the same
// path: the injection has no side effects.
type Handler struct {
	Settings injection.Settings
	// Claims reads workspace claims for the storage annotation's warnings
	// (nil: no claim warnings). Reads only: see claimWarnings.
	Claims client.Reader
	// Access asks the API server whether the user asking for a claim may
	// create it; Namespaces reads Namespaces' labels (metadata only) for
	// the admin's consent. See storageAdmission (nil Access: no check;
	// the served webhook always sets both).
	Access     client.Writer
	Namespaces client.Reader
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	return withoutTokens(h.handle(ctx, req))
}

func (h *Handler) handle(ctx context.Context, req admission.Request) admission.Response {
	log := logf.FromContext(ctx).WithValues("namespace", req.Namespace, "name", req.Name, "operation", req.Operation, "dryRun", req.DryRun != nil && *req.DryRun)
	if req.Kind.Group != appsv1.GroupName || req.Kind.Kind != "Deployment" ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("not a Deployment create or update")
	}
	var old *metav1.ObjectMeta
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		// Only the stored object's name, labels and annotations matter:
		// its record is what the user was already told about.
		old = storedMeta(req.OldObject.Raw)
	}
	m, err := injection.MutateJSON(req.Object.Raw, old, h.Settings)
	if err != nil {
		mutations.WithLabelValues(OutcomeError).Inc()
		if errors.As(err, new(*injection.DecodeError)) {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if errors.Is(m.Denied, injection.ErrNoSeedImage) { // this replica does not know its image yet
		mutations.WithLabelValues(OutcomeError).Inc()
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("opencode-injector cannot inject yet: %w", m.Denied))
	}
	warnings := m.Warnings
	if m.Denied != nil {
		mutations.WithLabelValues(OutcomeDenied).Inc()
		log.Info("denied", "reason", contract.HideTokens(m.Denied.Error()))
		return admission.Denied(m.Denied.Error()).WithWarnings(warnings...)
	}
	outcome := OutcomeUninjected
	if injection.Enabled(m.Mutated) {
		outcome = OutcomeInjected
		storageWarnings, denial, err := h.storageAdmission(ctx, req.Operation, req.UserInfo, m.Deployment, old)
		switch {
		case err != nil:
			mutations.WithLabelValues(OutcomeError).Inc()
			return admission.Errored(http.StatusInternalServerError, err)
		case denial != "":
			mutations.WithLabelValues(OutcomeDenied).Inc()
			log.Info("denied", "reason", contract.HideTokens(denial))
			return admission.Denied(denial).WithWarnings(warnings...)
		}
		warnings = append(warnings, storageWarnings...)
		warnings = append(warnings, h.claimWarnings(ctx, req.Operation, m.Deployment, old)...)
	}
	resp := admission.Allowed("")
	if len(m.Patch) > 0 {
		resp.Patches = m.Patch
		resp.PatchType = ptr.To(admissionv1.PatchTypeJSONPatch)
	} else {
		outcome = OutcomeUnchanged
	}
	mutations.WithLabelValues(outcome).Inc()
	log.V(1).Info("admitted", "outcome", outcome, "patchOperations", len(m.Patch), "warnings", len(warnings))
	return resp.WithWarnings(warnings...)
}

// storedMeta reads the name, labels and annotations of a stored object,
// stopping at its metadata (which the API server writes first) rather than
// decoding the whole object a second time; nil when it cannot.
func storedMeta(raw []byte) *metav1.ObjectMeta {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		if key != "metadata" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil
			}
			continue
		}
		var meta struct {
			Name        string            `json:"name"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		}
		if dec.Decode(&meta) != nil {
			return nil
		}
		return &metav1.ObjectMeta{Name: meta.Name, Labels: meta.Labels, Annotations: meta.Annotations}
	}
	return nil
}
