package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	admissionmetrics "sigs.k8s.io/controller-runtime/pkg/webhook/admission/metrics"

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
					if !resp.Allowed || resp.Result.Code != http.StatusOK {
						t.Fatalf("%s: denied (code %d): %s", op, resp.Result.Code, resp.Result.Message)
					}
					if !injection.IsInjected(injectiontest.Decode(t, applyResponse(t, raw, resp))) {
						t.Errorf("%s: allowed but not injected", op)
					}
					continue
				}
				if resp.Allowed || resp.Result.Code != http.StatusForbidden || len(resp.Patch) != 0 || resp.PatchType != nil {
					t.Fatalf("%s: want a denial (403) without a patch, got allowed=%v, code %d, a patch of %d bytes", op, resp.Allowed, resp.Result.Code, len(resp.Patch))
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

// Malformed admission reviews reach the webhook server's HTTP handlers
// (the Deployment handler and the scale guard) with panic recovery off, so
// a panic breaks the connection and fails the test (and controller-
// runtime's panic counter must not move). Each answer is HTTP 200 with the
// review's code: none gets a patch, and a Deployment or Scale that cannot be
// decoded is refused (fail closed) rather than admitted.
func TestMalformedAdmissionReviews(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(Path, (&admission.Webhook{Handler: newHandler()}).WithRecoverPanic(false))
	mux.Handle(ScalePath, (&admission.Webhook{Handler: &ScaleGuard{Deployments: readerOf()}}).WithRecoverPanic(false))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	panics := testutil.ToFloat64(admissionmetrics.WebhookPanics)
	review := func(object, kind, subResource string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"` + kind +
			`"},"resource":{"group":"apps","version":"v1","resource":"deployments"},"subResource":"` + subResource + `","operation":"` +
			map[string]string{"": "CREATE", "scale": "UPDATE"}[subResource] + `","object":` + object + `}}`
	}
	for name, tc := range map[string]struct {
		path, body, contentType string
		code                    int32 // the review's result code
	}{
		"empty body":                    {Path, "", "application/json", http.StatusBadRequest},
		"not JSON":                      {Path, "{{{", "application/json", http.StatusBadRequest},
		"wrong content type":            {Path, review(`{}`, "Deployment", ""), "text/plain", http.StatusBadRequest},
		"no request: not a Deployment":  {Path, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "application/json", http.StatusOK},
		"object is an array":            {Path, review(`[1,2]`, "Deployment", ""), "application/json", http.StatusBadRequest},
		"object is a string":            {Path, review(`"x"`, "Deployment", ""), "application/json", http.StatusBadRequest},
		"labeled, spec is garbage":      {Path, review(`{"metadata":{"labels":{"`+contract.LabelInject+`":"true"}},"spec":{"template":7}}`, "Deployment", ""), "application/json", http.StatusBadRequest},
		"truncated":                     {Path, review(`{"metadata":{"labels":{}}`, "Deployment", "")[:80], "application/json", http.StatusBadRequest},
		"scale: object is an array":     {ScalePath, review(`[1,2]`, "Scale", "scale"), "application/json", http.StatusBadRequest},
		"scale: replicas is a string":   {ScalePath, review(`{"spec":{"replicas":"9"}}`, "Scale", "scale"), "application/json", http.StatusBadRequest},
		"scale: no object":              {ScalePath, review(`null`, "Scale", "scale"), "application/json", http.StatusBadRequest},
		"scale: of a missing workspace": {ScalePath, review(`{"spec":{"replicas":9}}`, "Scale", "scale"), "application/json", http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+tc.path, tc.contentType, bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatalf("no answer (a panic?): %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d, want 200 with the review's answer", resp.StatusCode)
			}
			var out admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || out.Response.Result == nil {
				t.Fatalf("no review in the answer: %v", err)
			}
			if out.Response.Result.Code != tc.code {
				t.Errorf("code %d (%s), want %d", out.Response.Result.Code, out.Response.Result.Message, tc.code)
			}
			if len(out.Response.Patch) > 0 || out.Response.Allowed != (tc.code == http.StatusOK) {
				t.Errorf("a malformed review was allowed or patched: %+v", out.Response)
			}
		})
	}
	if got := testutil.ToFloat64(admissionmetrics.WebhookPanics) - panics; got != 0 {
		t.Errorf("%v panics in the handlers", got)
	}
}

// TestLongListsCostLinearMemory: a labeled Deployment whose container
// carries tens of thousands of env entries (a request of a few hundred
// kilobytes, far below the API server's limit) is patched correctly with
// memory in proportion to the request. The list diff once built a table
// of every pair of entries: 16,000 entries cost 3.9 GB and 23 s, enough
// for one request to have the webhook killed.
func TestLongListsCostLinearMemory(t *testing.T) {
	name := func(first string, i int) string {
		if i == 0 {
			return first
		}
		return fmt.Sprintf("E%d", i)
	}
	for _, tc := range []struct {
		name    string
		entries int
		env     func(i int) corev1.EnvVar
	}{
		{"distinct names", 20000, func(i int) corev1.EnvVar { return corev1.EnvVar{Name: name("E0", i), Value: "v"} }},
		{"the first one is the injection's", 20000, func(i int) corev1.EnvVar { return corev1.EnvVar{Name: name("HOME", i), Value: "v"} }},
		// Entries of one name are matched by rank: the n-th SAME with the n-th.
		{"one name, and the injection's first", 5000, func(i int) corev1.EnvVar {
			return corev1.EnvVar{Name: map[bool]string{true: "HOME", false: "SAME"}[i == 0], Value: fmt.Sprint(i)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := injectiontest.GoldenCases(t)["app-template-flux"].DeepCopy()
			c := &in.Spec.Template.Spec.Containers[0]
			c.Env = nil
			for i := range tc.entries {
				c.Env = append(c.Env, tc.env(i))
			}
			want, _ := mustInject(t, in)
			raw, resp := reviewInProportion(t, in)
			patchedIsMutated(t, raw, resp, want)
		})
	}
}

// TestLongRecordCostsLinearMemory: a workspace whose container has many
// env entries of names the injection sets (GIT_CONFIG_KEY_n), beside
// 20,000 others, injected and sent again with a changed image (stripped
// with its record, which puts the user's entries back, then injected
// again): memory in proportion to the request. Comparing each recorded
// entry with every other, and putting each back by one insertion, was
// quadratic: 4,000 such entries cost 750 MB for an 836 KB request.
func TestLongRecordCostsLinearMemory(t *testing.T) {
	for _, owned := range []int{250, 4000} {
		t.Run(fmt.Sprint(owned), func(t *testing.T) {
			in := injectiontest.GoldenCases(t)["app-template-flux"].DeepCopy()
			c := &in.Spec.Template.Spec.Containers[0]
			for i := range owned {
				c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("GIT_CONFIG_KEY_%d", 100+i), Value: "v"})
			}
			for i := range 20000 {
				c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("E%d", i), Value: "v"})
			}
			sent, _ := mustInject(t, in)
			sent = sent.DeepCopy()
			sent.Spec.Template.Spec.Containers[0].Image += "-new"
			want, _ := mustInject(t, sent)
			raw, resp := reviewInProportion(t, sent)
			patchedIsMutated(t, raw, resp, want)
		})
	}
}

// TestLongUnknownKeyCostsLittle: an unknown annotation under the prefix is
// answered with the nearest contract key in memory of the key's size. The
// edit distance once allocated a row per byte, for each contract key: a
// 100 KB key cost 253 MB. (The cut to 317 characters saves time only,
// which no test asserts.)
func TestLongUnknownKeyCostsLittle(t *testing.T) {
	in := injectiontest.GoldenCases(t)["app-template-flux"].DeepCopy()
	in.Annotations[contract.Prefix+"rep"+strings.Repeat("o", 100<<10)] = "v"
	_, resp := reviewInProportion(t, in)
	if !resp.Allowed || !slices.ContainsFunc(resp.Warnings, func(w string) bool { return strings.Contains(w, "did you mean "+contract.AnnotationRepo) }) {
		t.Errorf("want the workspace injected with a warning naming %s, got allowed=%v %q", contract.AnnotationRepo, resp.Allowed, resp.Warnings)
	}
}

// TestManyUnknownKeysCostLittle: 20,000 unknown annotations under the
// prefix are answered with 16 warnings naming a key each and one counting
// the rest, not 20,000 warnings each with an edit distance to every
// contract key.
func TestManyUnknownKeysCostLittle(t *testing.T) {
	in := injectiontest.GoldenCases(t)["app-template-flux"].DeepCopy()
	for i := range 20000 {
		in.Annotations[fmt.Sprintf("%sunknown-%d-%s", contract.Prefix, i, strings.Repeat("x", 200))] = "v"
	}
	_, resp := reviewInProportion(t, in)
	unknown := slices.DeleteFunc(slices.Clone(resp.Warnings), func(w string) bool { return !strings.Contains(w, "unknown annotation") })
	if !resp.Allowed || len(unknown) != 17 || !strings.Contains(unknown[16], "19984 more unknown annotations") {
		t.Errorf("want the workspace injected with 17 warnings about unknown annotations, the last counting 19984 more, got allowed=%v, %d: %.300q", resp.Allowed, len(unknown), unknown)
	}
}

// reviewInProportion sends d through the handler as a CREATE and fails
// the test when the review allocates more than 200 times the request: a
// generous bound, since the superlinear paths the long-input tests guard
// took thousands of times.
func reviewInProportion(t *testing.T, d *appsv1.Deployment) ([]byte, admission.Response) {
	t.Helper()
	raw := injectiontest.MustJSON(t, d)
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	resp := newHandler().Handle(context.Background(), request(admissionv1.Create, raw, nil))
	goruntime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 200*uint64(len(raw)) {
		t.Errorf("a review of %d KB allocated %d MB", len(raw)>>10, allocated>>20)
	}
	return raw, resp
}

// patchedIsMutated fails unless resp allows raw with a patch that gives want.
func patchedIsMutated(t *testing.T, raw []byte, resp admission.Response, want *appsv1.Deployment) {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("denied: %s", resp.Result.Message)
	}
	if got := injectiontest.Decode(t, applyResponse(t, raw, resp)); !equality.Semantic.DeepEqual(want, got) {
		t.Error("the patched request differs from Mutate's output")
	}
}
