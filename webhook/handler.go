package webhook

import (
	"context"
	"encoding/json"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Outcomes counted by opencode_injector_mutations_total.
const (
	OutcomeInjected   = "injected"
	OutcomeUnchanged  = "unchanged"
	OutcomeUninjected = "un-injected"
	OutcomeDenied     = "denied"
)

// Handler is the admission shell around Inject: decoding, patching,
// warnings, metrics. Dry-run requests take the same path: Inject has no
// side effects.
type Handler struct {
	Settings Settings
	Decoder  admission.Decoder
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	log := logf.FromContext(ctx).WithValues("namespace", req.Namespace, "name", req.Name, "operation", req.Operation, "dryRun", req.DryRun != nil && *req.DryRun)
	if req.Kind.Group != appsv1.GroupName || req.Kind.Kind != "Deployment" ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("not a Deployment create or update")
	}
	var d appsv1.Deployment
	if err := h.Decoder.DecodeRaw(req.Object, &d); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	out, warnings, err := Inject(&d, h.Settings)
	if err != nil {
		mutations.WithLabelValues(OutcomeDenied).Inc()
		log.Info("denied", "reason", err.Error())
		return admission.Denied(err.Error()).WithWarnings(warnings...)
	}
	if req.Operation == admissionv1.Update && Enabled(out) && len(req.OldObject.Raw) > 0 {
		var old appsv1.Deployment
		if err := h.Decoder.DecodeRaw(req.OldObject, &old); err == nil {
			warnings = append(warnings, changeWarnings(&old, out)...)
		}
	}
	marshaled, err := json.Marshal(out)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, marshaled)
	outcome := OutcomeInjected
	switch {
	case !Enabled(out) && IsInjected(&d):
		outcome = OutcomeUninjected
	case len(resp.Patches) == 0:
		outcome = OutcomeUnchanged
	}
	mutations.WithLabelValues(outcome).Inc()
	log.V(1).Info("admitted", "outcome", outcome, "patchOperations", len(resp.Patches), "warnings", len(warnings))
	return resp.WithWarnings(warnings...)
}

// changeWarnings tells the user what an UPDATE of an injected workspace will
// not change on the claim.
func changeWarnings(old, cur *appsv1.Deployment) []string {
	if !Enabled(old) || !Enabled(cur) || !IsInjected(old) {
		return nil
	}
	var warnings []string
	if o, c := old.Annotations[AnnotationBranch], cur.Annotations[AnnotationBranch]; o != c {
		warnings = append(warnings, "annotation "+AnnotationBranch+" changed: the existing clone keeps its branch; switch it with git in the workspace")
	}
	if o, c := old.Annotations[AnnotationRepo], cur.Annotations[AnnotationRepo]; o != c {
		warnings = append(warnings, "annotation "+AnnotationRepo+" changed: the old clone stays on the claim; the new repo is cloned beside it")
	}
	return warnings
}
