package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// secretMark is in every credential the hostile inputs carry; no response
// may repeat it.
const secretMark = "ghp_SECRET"

// TestHostileInputs sends hostile and malformed Deployments through the
// handler: each is denied with a message that names what is wrong, or
// passed through with a patch that applies; never a panic, never a patch
// on a denial, never a credential echoed in the message or the warnings.
func TestHostileInputs(t *testing.T) {
	h := newHandler()
	annotate := func(key, value string) func(*appsv1.Deployment) {
		return func(d *appsv1.Deployment) { d.Annotations[key] = value }
	}
	repo := func(v string) func(*appsv1.Deployment) { return annotate(contract.AnnotationRepo, v) }
	cases := []struct {
		name string
		edit func(*appsv1.Deployment)
		want string // substring of the denial; "" means allowed
	}{
		{"ssh scheme", repo("ssh://git@github.com/a/b.git"), "only https"},
		{"git scheme", repo("git://github.com/a/b.git"), "scheme git://"},
		{"http scheme", repo("http://github.com/a/b.git"), "scheme http://"},
		{"file scheme", repo("file:///etc/passwd"), "scheme file://"},
		{"ext transport", repo("ext::sh -c id"), "whitespace"},
		{"remote helper", repo("fd::17"), "remote helper"},
		{"option injection", repo("--upload-pack=touch"), "starts with '-'"},
		{"token in https userinfo", repo("https://" + secretMark + "@github.com/a/b"), "credentials"},
		{"user and token", repo("https://x:" + secretMark + "@github.com/a/b"), "credentials"},
		{"token user scp form", repo("x-access-token:" + secretMark + "@github.com:owner/name"), "credentials"},
		{"token without scheme", repo("user:" + secretMark + "@github.com/owner/name"), "credentials"},
		{"token as scp user", repo(secretMark + "@github.com:owner/name.git"), "credentials"},
		{"token with '?' in password", repo("https://bob:" + secretMark + "?x@github.com/a/b"), "annotation " + contract.AnnotationRepo},
		{"token with '#' in password", repo("bob:" + secretMark + "#x@github.com:a/b"), "annotation " + contract.AnnotationRepo},
		{"fullwidth at sign", repo("https://user:" + secretMark + "\uFF20github.com/a/b"), "non-ASCII"},
		{"escaped at sign", repo("https://user:" + secretMark + "%40github.com/a/b"), "annotation " + contract.AnnotationRepo},
		{"token in query", repo("https://github.com/a/b?token=" + secretMark), "query string"},
		{"fragment", repo("https://github.com/a/b#main"), "query string or fragment"},
		{"dot dot", repo("https://github.com/a/../b"), "'..'"},
		{"leading slash", repo("/etc/passwd"), "starts with '/'"},
		{"dot git name", repo("a/.git"), "not a valid owner/name"},
		{"name of 101 characters", repo("a/" + strings.Repeat("n", 101)), "1 to 100"},
		{"very long value", repo(strings.Repeat("a", 100000) + "/b"), "not a valid owner/name"},
		{"empty repo", repo(""), "missing or empty"},
		{"newline", repo("a/b\nc"), "whitespace"},
		{"nul byte", repo("a/b\x00"), "control"},
		{"unicode slash", repo("a\u2215b"), "non-ASCII"},
		{"cyrillic owner", repo("\u0430ngryninja/k8s-cluster"), "non-ASCII"},
		{"right-to-left override", repo("a/b\u202e"), "annotation " + contract.AnnotationRepo},
		{"host not allowed", repo("https://gitlab.com/a/b"), "not allowed"},
		{"look-alike host", repo("https://g\u0456thub.com/a/b"), "non-ASCII"},
		{"port not allowed", repo("https://github.com:444/a/b"), "not allowed"},
		{"branch dot dot", annotate(contract.AnnotationBranch, "a..b"), "not a valid git branch"},
		{"branch option", annotate(contract.AnnotationBranch, "--orphan"), "not a valid git branch"},
		{"branch unicode", annotate(contract.AnnotationBranch, "ma\u00efn"), "not a valid git branch"},
		{"branch empty", annotate(contract.AnnotationBranch, ""), "not a valid git branch"},
		{"secret uppercase", annotate(contract.AnnotationSecret, "My_Secret"), "DNS-1123"},
		{"claim too long", annotate(contract.AnnotationClaim, strings.Repeat("c", 254)), "not a valid name"},
		{"container missing", annotate(contract.AnnotationContainer, "ghost"), "names no container"},
		{"seed memory not a quantity", annotate(contract.AnnotationSeedMemory, "lots"), "positive memory quantity"},
		{"seed memory negative", annotate(contract.AnnotationSeedMemory, "-1Gi"), "positive memory quantity"},
		{"replicas 2", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](2) }, "spec.replicas is 2"},
		{"volume named like ours", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: contract.DataVolumeName})
		}, "reserved"},
		{"init container named like ours", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.InitContainers = append(d.Spec.Template.Spec.InitContainers, corev1.Container{Name: contract.SeedContainerName, Image: "evil"})
		}, "reserved"},
		{"sidecar mounting our claim", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: "x",
				VolumeMounts: []corev1.VolumeMount{{Name: contract.DataVolumeName, MountPath: "/x"}}})
		}, "owns"},
		{"unknown annotation key", annotate(contract.Prefix+"repos", "x"), ""},
		{"huge Deployment near the request size limit", func(d *appsv1.Deployment) {
			d.Annotations["example.com/blob"] = strings.Repeat("x", 1<<20)
			for i := range 2000 {
				d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "V" + strings.Repeat("x", i%50), Value: "v"})
			}
		}, ""},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d hostile inputs", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
			tc.edit(d)
			raw := injectiontest.MustJSON(t, d)
			for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
				resp := h.Handle(context.Background(), request(op, raw, raw))
				text := resp.Result.Message + strings.Join(resp.Warnings, "\n")
				if strings.Contains(text, secretMark) {
					t.Errorf("%s: a credential is echoed: %s", op, text)
				}
				if tc.want == "" {
					if !resp.Allowed {
						t.Fatalf("%s: denied: %s", op, resp.Result.Message)
					}
					if !injection.IsInjected(injectiontest.Decode(t, applyResponse(t, raw, resp))) {
						t.Errorf("%s: allowed but not injected", op)
					}
					continue
				}
				if resp.Allowed || len(resp.Patch) != 0 || resp.PatchType != nil {
					t.Fatalf("%s: want a denial without a patch, got allowed=%v, a patch of %d bytes", op, resp.Allowed, len(resp.Patch))
				}
				if !strings.Contains(resp.Result.Message, tc.want) {
					t.Errorf("%s: the denial does not say %q: %s", op, tc.want, resp.Result.Message)
				}
			}

			// A way out is never blocked, whatever the annotations hold:
			// removing the label, and any update of a Deployment being deleted.
			injected, _ := mustInject(t, injectiontest.ReadDeployment(t, injectiontest.FluxFixture))
			out := d.DeepCopy()
			out.Annotations[contract.AnnotationInjected] = injected.Annotations[contract.AnnotationInjected]
			delete(out.Labels, contract.LabelInject)
			if resp := h.Handle(context.Background(), request(admissionv1.Update, injectiontest.MustJSON(t, out), injectiontest.MustJSON(t, injected))); !resp.Allowed {
				t.Errorf("removing the label was denied: %s", resp.Result.Message)
			}
			deleting := d.DeepCopy()
			now := metav1.Now()
			deleting.DeletionTimestamp = &now
			if resp := h.Handle(context.Background(), request(admissionv1.Update, injectiontest.MustJSON(t, deleting), injectiontest.MustJSON(t, deleting))); !resp.Allowed || len(resp.Patch) != 0 {
				t.Errorf("an update of a Deployment being deleted was denied or patched: %s", resp.Result.Message)
			}
		})
	}
}

// Malformed admission reviews reach the webhook server's HTTP handler:
// none panics or gets a patch, and a Deployment that cannot be decoded is
// refused (fail closed) rather than admitted un-injected.
func TestMalformedAdmissionReviews(t *testing.T) {
	srv := httptest.NewServer(&admission.Webhook{Handler: newHandler()})
	defer srv.Close()
	review := func(object string, kind string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"` + kind +
			`"},"resource":{"group":"apps","version":"v1","resource":"deployments"},"operation":"CREATE","object":` + object + `}}`
	}
	for name, tc := range map[string]struct {
		body, contentType string
	}{
		"empty body":               {"", "application/json"},
		"not JSON":                 {"{{{", "application/json"},
		"wrong content type":       {review(`{}`, "Deployment"), "text/plain"},
		"no request":               {`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "application/json"},
		"object is an array":       {review(`[1,2]`, "Deployment"), "application/json"},
		"object is a string":       {review(`"x"`, "Deployment"), "application/json"},
		"labeled, spec is garbage": {review(`{"metadata":{"labels":{"`+contract.LabelInject+`":"true"}},"spec":{"template":7}}`, "Deployment"), "application/json"},
		"truncated":                {review(`{"metadata":{"labels":{}}`, "Deployment")[:80], "application/json"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Post(srv.URL, tc.contentType, bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out admissionv1.AdmissionReview
			if resp.StatusCode == http.StatusOK {
				if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
					t.Fatalf("undecodable response: %v", err)
				}
				if out.Response != nil && (len(out.Response.Patch) > 0 || (out.Response.Allowed && strings.Contains(tc.body, `"kind":"Deployment"`))) {
					t.Errorf("a malformed Deployment review was allowed or patched: %+v", out.Response)
				}
			}
		})
	}
}
