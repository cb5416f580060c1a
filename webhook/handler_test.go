package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	"github.com/angryninja/opencode-injector/manifest"
)

// These tests call Handle directly, as the webhook server does, without an
// API server: the patch must turn the raw request into Mutate's output.

// testSettings are the flag defaults with a fixed seed image.
func testSettings() injection.Settings {
	return injection.DefaultSettings(injection.ImageRepository + ":v0.0.0-test")
}

func newHandler() *Handler { return &Handler{Settings: testSettings()} }

func mustInject(t testing.TB, d *appsv1.Deployment) (*appsv1.Deployment, []string) {
	t.Helper()
	out, warnings, err := injection.Mutate(d, nil, testSettings())
	if err != nil {
		t.Fatalf("denied: %v", err)
	}
	return out, warnings
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
	if len(resp.Patches) != 0 {
		t.Fatalf("typed patches, which Complete would marshal again: %v", resp.Patches)
	}
	if len(resp.Patch) == 0 {
		if resp.PatchType != nil {
			t.Errorf("patch type %v without a patch", *resp.PatchType)
		}
		return raw
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patches without patch type JSONPatch: %v", resp.PatchType)
	}
	var ops []jsonpatch.Operation
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatalf("the patch %s: %v", resp.Patch, err)
	}
	return injectiontest.ApplyPatch(t, raw, ops)
}

func outcomeCount(o string) float64 { return testutil.ToFloat64(mutations.WithLabelValues(o)) }

func TestHandlePatchYieldsInjectedObject(t *testing.T) {
	h := newHandler()
	for name, in := range injectiontest.GoldenCases(t) {
		t.Run(name, func(t *testing.T) {
			want, warnings, err := injection.Mutate(in, nil, testSettings())
			raw := injectiontest.MustJSON(t, in)
			denied := outcomeCount(OutcomeDenied)
			resp := h.Handle(context.Background(), request(admissionv1.Create, raw, nil))
			if err != nil {
				if resp.Allowed || !strings.Contains(resp.Result.Message, err.Error()) || len(resp.Patch) != 0 {
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
			got := injectiontest.Decode(t, applyResponse(t, raw, resp))
			if !equality.Semantic.DeepEqual(want, got) {
				a, _ := manifest.EncodeYAML(want)
				b, _ := manifest.EncodeYAML(got)
				t.Errorf("patched request differs from Mutate's output:\nwant %s\ngot  %s", a, b)
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
	h := newHandler()
	injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	raw := injectiontest.MustJSON(t, injected)
	unchanged := outcomeCount(OutcomeUnchanged)
	resp := h.Handle(context.Background(), request(admissionv1.Update, raw, raw))
	if !resp.Allowed || len(resp.Patch) != 0 || resp.PatchType != nil {
		t.Errorf("want allowed without a patch, got allowed=%v patch=%s type=%v", resp.Allowed, resp.Patch, resp.PatchType)
	}
	if len(resp.Warnings) != 0 {
		t.Errorf("a no-op update warns: %q", resp.Warnings)
	}
	if outcomeCount(OutcomeUnchanged) != unchanged+1 {
		t.Error("not counted as unchanged")
	}
}

func TestHandleCountsOutcomes(t *testing.T) {
	h := newHandler()
	in := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	injected, _ := mustInject(t, in)
	plain := injected.DeepCopy()
	delete(plain.Labels, contract.LabelInject)
	for _, tc := range []struct {
		outcome string
		req     admission.Request
	}{
		{OutcomeInjected, request(admissionv1.Create, injectiontest.MustJSON(t, in), nil)},
		{OutcomeUninjected, request(admissionv1.Update, injectiontest.MustJSON(t, plain), injectiontest.MustJSON(t, injected))},
		{OutcomeDenied, request(admissionv1.Create, []byte(strings.Replace(string(injectiontest.MustJSON(t, in)), `"angryninja/k8s-cluster"`, `"ssh://x/y"`, 1)), nil)},
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
	h := newHandler()
	var u map[string]any
	if err := json.Unmarshal(injectiontest.MustJSON(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture)), &u); err != nil {
		t.Fatal(err)
	}
	podSpec := u["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	podSpec["futurePodField"] = map[string]any{"enabled": true}
	container := podSpec["containers"].([]any)[0].(map[string]any)
	container["futureContainerField"] = "kept"
	raw := injectiontest.MustJSON(t, u)
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
		if !injection.IsInjected(injectiontest.Decode(t, []byte(out))) {
			t.Errorf("%s: not injected", op)
		}
	}
}

func TestHandleLeavesOtherKindsAlone(t *testing.T) {
	h := newHandler()
	req := request(admissionv1.Create, []byte(`{"apiVersion":"apps/v1","kind":"StatefulSet"}`), nil)
	req.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Patch) != 0 {
		t.Errorf("a StatefulSet was not passed through: %+v", resp)
	}
}

// Unknown fields inside list items survive too: in a volume mount of a
// volume mounted twice (duplicate names), in an env entry, in the pod
// securityContext, on injection and on un-injection.
func TestHandleKeepsUnknownFieldsInListItems(t *testing.T) {
	h := newHandler()
	in := injectiontest.ReadDeployment(t, "../injection/testdata/non-root-no-uid.yaml") // gets an fsGroup, removed again on un-injection
	c := &in.Spec.Template.Spec.Containers[0]
	in.Spec.Template.Spec.Volumes = append(in.Spec.Template.Spec.Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "cfg", MountPath: "/a"}, corev1.VolumeMount{Name: "cfg", MountPath: "/b"})
	c.Env = append([]corev1.EnvVar{{Name: "HOME", Value: "/root"}}, append(c.Env, corev1.EnvVar{Name: "KEEP", Value: "x"})...)
	var u map[string]any
	if err := json.Unmarshal(injectiontest.MustJSON(t, in), &u); err != nil {
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
	raw := injectiontest.MustJSON(t, u)
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
	unlabeled := injectiontest.MustJSON(t, v)
	resp = h.Handle(context.Background(), request(admissionv1.Update, unlabeled, injected))
	restored := applyResponse(t, unlabeled, resp)
	for _, want := range unknown {
		if !strings.Contains(string(restored), want) {
			t.Errorf("un-injection removed %s", want)
		}
	}
	want := injectiontest.Decode(t, raw)
	delete(want.Labels, contract.LabelInject)
	injectiontest.AssertEqual(t, "un-injection through the handler", want, injectiontest.Decode(t, restored))
}

// Advice about the user's settings does not repeat on every reconcile.
func TestNoOpUpdateIsQuiet(t *testing.T) {
	h := newHandler()
	for _, name := range []string{"env-collision", "non-root-no-uid", "unknown-key", "rolling-update", "seed-memory-clamped"} {
		t.Run(name, func(t *testing.T) {
			in := injectiontest.ReadDeployment(t, "../injection/testdata/"+name+".yaml")
			first, warnings := mustInject(t, in)
			if len(warnings) == 0 {
				t.Fatal("the case gives no warning at all")
			}
			stored := injectiontest.MustJSON(t, first)
			resp := h.Handle(context.Background(), request(admissionv1.Update, stored, stored))
			if len(resp.Warnings) != 0 || len(resp.Patch) != 0 {
				t.Errorf("a no-op update warns %q or patches %s", resp.Warnings, resp.Patch)
			}
			// Server-side apply drops the fields its manager stopped sending:
			// the request is the chart's object again, the stored one injected.
			resp = h.Handle(context.Background(), request(admissionv1.Update, injectiontest.MustJSON(t, in), stored))
			if len(resp.Warnings) != 0 {
				t.Errorf("a re-sent chart object warns again: %q", resp.Warnings)
			}
			injectiontest.AssertEqual(t, "the re-sent chart object", first, injectiontest.Decode(t, applyResponse(t, injectiontest.MustJSON(t, in), resp)))
		})
	}
}

// A replica that does not know its seed image yet refuses to inject (and
// counts the error), but a way out always passes: removing the label, and
// updating a Deployment being deleted.
func TestSeedImageGateLetsWaysOutPass(t *testing.T) {
	h := newHandler()
	wayOut := *h
	wayOut.Settings.SeedImage = ""
	gate := NewSeedImageGate(&wayOut)
	gate.SetError(fmt.Errorf("the seed image is not known yet"))
	injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
	stored := injectiontest.MustJSON(t, injected)

	errors := outcomeCount(OutcomeError)
	if resp := gate.Handle(context.Background(), request(admissionv1.Update, stored, stored)); resp.Allowed {
		t.Error("a replica without a seed image answered an injection")
	}
	if outcomeCount(OutcomeError) != errors+1 {
		t.Error("the refused review was not counted as an error")
	}

	unlabeled := injected.DeepCopy()
	delete(unlabeled.Labels, contract.LabelInject)
	raw := injectiontest.MustJSON(t, unlabeled)
	resp := gate.Handle(context.Background(), request(admissionv1.Update, raw, stored))
	if !resp.Allowed || injection.IsInjected(injectiontest.Decode(t, applyResponse(t, raw, resp))) {
		t.Errorf("removing the label did not pass and un-inject: %+v", resp.Result)
	}
	deleting := injected.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	if resp := gate.Handle(context.Background(), request(admissionv1.Update, injectiontest.MustJSON(t, deleting), stored)); !resp.Allowed {
		t.Errorf("an update of a Deployment being deleted did not pass: %+v", resp.Result)
	}
}

// The handler keeps the stored object's injection: a server-side apply
// that dropped the injected fields, reviewed by an injector with another
// seed image, gets the stored pod template back, with its old seed image.
func TestHandleKeepsTheStoredInjection(t *testing.T) {
	user := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
	before := injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("1", 64))
	stored, _, err := injection.Mutate(user, nil, before)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Settings: injection.DefaultSettings(injection.ImageRepository + "@sha256:" + strings.Repeat("2", 64))}
	raw := injectiontest.MustJSON(t, user)
	resp := h.Handle(context.Background(), request(admissionv1.Update, raw, injectiontest.MustJSON(t, stored)))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	got := injectiontest.Decode(t, applyResponse(t, raw, resp))
	if !equality.Semantic.DeepEqual(got.Spec.Template, stored.Spec.Template) || got.Annotations[contract.AnnotationInjected] != stored.Annotations[contract.AnnotationInjected] {
		t.Errorf("the stored injection was not kept: seed %s", got.Spec.Template.Spec.InitContainers[0].Image)
	}
}
