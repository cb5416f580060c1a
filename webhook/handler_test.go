package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
)

// These tests call Handle directly, as the webhook server does, without an
// API server: the patch must turn the raw request into Inject's output.

func newHandler(t testing.TB) *Handler {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return &Handler{Settings: testSettings(), Decoder: admission.NewDecoder(scheme)}
}

var deploymentKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

func request(op admissionv1.Operation, object, old []byte) admission.Request {
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid", Kind: deploymentKind, Operation: op, Namespace: "opencode", Name: "ws",
		Object: runtime.RawExtension{Raw: object},
	}}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: old}
	}
	return req
}

// applyResponse applies the response's patch to raw, as the API server does.
func applyResponse(t testing.TB, raw []byte, resp admission.Response) []byte {
	t.Helper()
	if len(resp.Patches) == 0 {
		if resp.PatchType != nil {
			t.Errorf("patch type %v without a patch", *resp.PatchType)
		}
		return raw
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patches without patch type JSONPatch: %v", resp.PatchType)
	}
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", ops, err)
	}
	return out
}

func decode(t testing.TB, raw []byte) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &d
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func outcomeCount(o string) float64 { return testutil.ToFloat64(mutations.WithLabelValues(o)) }

func TestHandlePatchYieldsInjectedObject(t *testing.T) {
	h := newHandler(t)
	for name, in := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			want, warnings, err := Inject(in, testSettings())
			raw := mustJSON(t, in)
			denied := outcomeCount(OutcomeDenied)
			resp := h.Handle(context.Background(), request(admissionv1.Create, raw, nil))
			if err != nil {
				if resp.Allowed || !strings.Contains(resp.Result.Message, err.Error()) || len(resp.Patches) != 0 {
					t.Errorf("want a denial without a patch saying %q, got allowed=%v %q", err, resp.Allowed, resp.Result.Message)
				}
				if outcomeCount(OutcomeDenied) != denied+1 {
					t.Error("denial not counted")
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("denied: %s", resp.Result.Message)
			}
			got := decode(t, applyResponse(t, raw, resp))
			if !equality.Semantic.DeepEqual(want, got) {
				a, _ := EncodeYAML(want)
				b, _ := EncodeYAML(got)
				t.Errorf("patched request differs from Inject's output:\nwant %s\ngot  %s", a, b)
			}
			if strings.Join(resp.Warnings, "\n") != strings.Join(warnings, "\n") {
				t.Errorf("warnings %q, want %q", resp.Warnings, warnings)
			}
		})
	}
}

// A no-op UPDATE of an injected workspace (a Flux reconcile) is allowed
// without a patch and counted as unchanged.
func TestHandleNoOpUpdate(t *testing.T) {
	h := newHandler(t)
	injected, _ := mustInject(t, readDeployment(t, fluxFixture))
	raw := mustJSON(t, injected)
	unchanged := outcomeCount(OutcomeUnchanged)
	resp := h.Handle(context.Background(), request(admissionv1.Update, raw, raw))
	if !resp.Allowed || len(resp.Patches) != 0 || resp.PatchType != nil {
		t.Errorf("want allowed without a patch, got allowed=%v patches=%v type=%v", resp.Allowed, resp.Patches, resp.PatchType)
	}
	if len(resp.Warnings) != 0 {
		t.Errorf("a no-op update warns: %q", resp.Warnings)
	}
	if outcomeCount(OutcomeUnchanged) != unchanged+1 {
		t.Error("not counted as unchanged")
	}
}

func TestHandleCountsOutcomes(t *testing.T) {
	h := newHandler(t)
	in := readDeployment(t, fluxFixture)
	injected, _ := mustInject(t, in)
	plain := injected.DeepCopy()
	delete(plain.Labels, contract.LabelInject)
	for _, tc := range []struct {
		outcome string
		req     admission.Request
	}{
		{OutcomeInjected, request(admissionv1.Create, mustJSON(t, in), nil)},
		{OutcomeUninjected, request(admissionv1.Update, mustJSON(t, plain), mustJSON(t, injected))},
		{OutcomeDenied, request(admissionv1.Create, []byte(strings.Replace(string(mustJSON(t, in)), `"angryninja/k8s-cluster"`, `"ssh://x/y"`, 1)), nil)},
	} {
		before := outcomeCount(tc.outcome)
		h.Handle(context.Background(), tc.req)
		if outcomeCount(tc.outcome) != before+1 {
			t.Errorf("%s not counted", tc.outcome)
		}
	}
}

// A field this webhook's API types do not know (a newer cluster's) must
// survive the patch, in the pod spec and in the OpenCode container.
func TestHandleKeepsUnknownFields(t *testing.T) {
	h := newHandler(t)
	var u map[string]any
	if err := json.Unmarshal(mustJSON(t, readDeployment(t, fluxFixture)), &u); err != nil {
		t.Fatal(err)
	}
	podSpec := u["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	podSpec["futurePodField"] = map[string]any{"enabled": true}
	container := podSpec["containers"].([]any)[0].(map[string]any)
	container["futureContainerField"] = "kept"
	raw := mustJSON(t, u)
	for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
		resp := h.Handle(context.Background(), request(op, raw, nil))
		if !resp.Allowed {
			t.Fatalf("%s denied: %s", op, resp.Result.Message)
		}
		out := string(applyResponse(t, raw, resp))
		for _, want := range []string{`"futurePodField":{"enabled":true}`, `"futureContainerField":"kept"`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the patch removed %s", op, want)
			}
		}
		if !IsInjected(decode(t, []byte(out))) {
			t.Errorf("%s: not injected", op)
		}
	}
}

func TestHandleLeavesOtherKindsAlone(t *testing.T) {
	h := newHandler(t)
	req := request(admissionv1.Create, []byte(`{"apiVersion":"apps/v1","kind":"StatefulSet"}`), nil)
	req.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("a StatefulSet was not passed through: %+v", resp)
	}
}

// Unknown fields inside list items survive too: in a volume mount of a
// volume mounted twice (duplicate names), in an env entry, in the pod
// securityContext, on injection and on un-injection.
func TestHandleKeepsUnknownFieldsInListItems(t *testing.T) {
	h := newHandler(t)
	in := readDeployment(t, "testdata/non-root-no-uid.yaml") // gets an fsGroup, removed again on un-injection
	c := &in.Spec.Template.Spec.Containers[0]
	in.Spec.Template.Spec.Volumes = append(in.Spec.Template.Spec.Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "cfg", MountPath: "/a"}, corev1.VolumeMount{Name: "cfg", MountPath: "/b"})
	c.Env = append([]corev1.EnvVar{{Name: "HOME", Value: "/root"}}, append(c.Env, corev1.EnvVar{Name: "KEEP", Value: "x"})...)
	var u map[string]any
	if err := json.Unmarshal(mustJSON(t, in), &u); err != nil {
		t.Fatal(err)
	}
	podSpec := u["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	container := podSpec["containers"].([]any)[0].(map[string]any)
	container["volumeMounts"].([]any)[1].(map[string]any)["futureMountField"] = "m"
	env := container["env"].([]any)
	env[len(env)-1].(map[string]any)["futureEnvField"] = "e"
	psc, _ := podSpec["securityContext"].(map[string]any)
	if psc == nil {
		psc = map[string]any{}
		podSpec["securityContext"] = psc
	}
	psc["futurePodSecurityField"] = "s"
	raw := mustJSON(t, u)
	unknown := []string{`"futureMountField":"m"`, `"futureEnvField":"e"`, `"futurePodSecurityField":"s"`}

	resp := h.Handle(context.Background(), request(admissionv1.Create, raw, nil))
	injected := applyResponse(t, raw, resp)
	for _, want := range unknown {
		if !strings.Contains(string(injected), want) {
			t.Errorf("injection removed %s", want)
		}
	}
	var v map[string]any
	if err := json.Unmarshal(injected, &v); err != nil {
		t.Fatal(err)
	}
	delete(v["metadata"].(map[string]any)["labels"].(map[string]any), contract.LabelInject)
	unlabeled := mustJSON(t, v)
	resp = h.Handle(context.Background(), request(admissionv1.Update, unlabeled, injected))
	restored := applyResponse(t, unlabeled, resp)
	for _, want := range unknown {
		if !strings.Contains(string(restored), want) {
			t.Errorf("un-injection removed %s", want)
		}
	}
	want := decode(t, raw)
	delete(want.Labels, contract.LabelInject)
	assertEqual(t, "un-injection through the handler", want, decode(t, restored))
}

// A replica that does not know its seed image yet refuses to inject (and
// counts the error), but a way out always passes: removing the label, and
// updating a Deployment being deleted.
func TestSeedImageGateLetsWaysOutPass(t *testing.T) {
	h := newHandler(t)
	wayOut := *h
	wayOut.Settings.SeedImage = ""
	gate := &seedImageGate{wayOut: &wayOut}
	gate.setError(fmt.Errorf("the seed image is not known yet"))
	injected, _ := mustInject(t, readDeployment(t, fluxFixture))
	stored := mustJSON(t, injected)

	errors := outcomeCount(OutcomeError)
	if resp := gate.Handle(context.Background(), request(admissionv1.Update, stored, stored)); resp.Allowed {
		t.Error("a replica without a seed image answered an injection")
	}
	if outcomeCount(OutcomeError) != errors+1 {
		t.Error("the refused review was not counted as an error")
	}

	unlabeled := injected.DeepCopy()
	delete(unlabeled.Labels, contract.LabelInject)
	raw := mustJSON(t, unlabeled)
	resp := gate.Handle(context.Background(), request(admissionv1.Update, raw, stored))
	if !resp.Allowed || IsInjected(decode(t, applyResponse(t, raw, resp))) {
		t.Errorf("removing the label did not pass and un-inject: %+v", resp.Result)
	}
	deleting := injected.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	if resp := gate.Handle(context.Background(), request(admissionv1.Update, mustJSON(t, deleting), stored)); !resp.Allowed {
		t.Errorf("an update of a Deployment being deleted did not pass: %+v", resp.Result)
	}
}
