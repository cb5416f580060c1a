package webhook

import (
	"context"
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
	if req.Kind.Group != appsv1.GroupName || req.Kind.Kind != "Deployment" ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("not a Deployment create or update")
	}
	var stored []byte
	if req.Operation == admissionv1.Update {
		// The stored object's record is what the user was already told
		// about, and its injection is kept while the user's part stays.
		stored = req.OldObject.Raw
	}
	m, err := injection.MutateJSON(req.Object.Raw, stored, h.Settings)
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
		logf.FromContext(ctx).Info("denied", "operation", req.Operation, "dryRun", isDryRun(req), "reason", contract.HideTokens(m.Denied.Error()))
		return admission.Denied(m.Denied.Error()).WithWarnings(warnings...)
	}
	outcome := OutcomeUninjected
	if injection.Enabled(m.Mutated) {
		outcome = OutcomeInjected
		var old *metav1.ObjectMeta
		if m.Stored != nil {
			old = &m.Stored.ObjectMeta
		}
		storageWarnings, denial, err := h.storageAdmission(ctx, req.Operation, req.UserInfo, m.Deployment, old)
		switch {
		case err != nil:
			mutations.WithLabelValues(OutcomeError).Inc()
			return admission.Errored(http.StatusInternalServerError, err)
		case denial != "":
			mutations.WithLabelValues(OutcomeDenied).Inc()
			logf.FromContext(ctx).Info("denied", "operation", req.Operation, "dryRun", isDryRun(req), "reason", contract.HideTokens(denial))
			return admission.Denied(denial).WithWarnings(warnings...)
		}
		warnings = append(warnings, storageWarnings...)
		warnings = append(warnings, h.claimWarnings(ctx, req.Operation, m.Deployment, old)...)
	}
	resp := admission.Allowed("")
	if len(m.Patch) > 0 {
		// The patch's bytes, written once (Patches would be marshaled
		// again, value by value, by Complete).
		patch, err := injection.EncodePatch(m.Patch)
		if err != nil {
			mutations.WithLabelValues(OutcomeError).Inc()
			return admission.Errored(http.StatusInternalServerError, err)
		}
		resp.Patch = patch
		resp.PatchType = ptr.To(admissionv1.PatchTypeJSONPatch)
	} else {
		outcome = OutcomeUnchanged
	}
	mutations.WithLabelValues(outcome).Inc()
	// The values are built only when the level is on: this runs on every review.
	if log := logf.FromContext(ctx).V(1); log.Enabled() {
		log.Info("admitted", "operation", req.Operation, "dryRun", isDryRun(req), "outcome", outcome, "patchOperations", len(m.Patch), "warnings", len(warnings))
	}
	return resp.WithWarnings(warnings...)
}

func isDryRun(req admission.Request) bool { return req.DryRun != nil && *req.DryRun }
