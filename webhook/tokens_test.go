package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// A token pasted bare into any annotation, or into a hand-edited record, is
// never repeated by the answer (message, warnings) nor by the log, while a
// commit-like 40-hex value stays visible.
func TestNoTokenInAnyAnswerOrLog(t *testing.T) {
	const body = "0123456789abcdefABCDEF" // what of each token may never show
	annotate := func(key, value string) func(*appsv1.Deployment) {
		return func(d *appsv1.Deployment) { d.Annotations[key] = value }
	}
	for name, tc := range map[string]struct {
		edit    func(*appsv1.Deployment)
		unlabel bool
	}{
		"bare token as repo":            {edit: annotate(contract.AnnotationRepo, "ghp_"+body)},
		"bare fine-grained token":       {edit: annotate(contract.AnnotationRepo, "github_pat_11A_"+body)},
		"token as branch":               {edit: annotate(contract.AnnotationBranch, "gho_"+body+"..x")},
		"token as secret name":          {edit: annotate(contract.AnnotationSecret, "ghu_"+body)},
		"gitlab token as container":     {edit: annotate(contract.AnnotationContainer, "glpat-"+strings.ToLower(body))},
		"token as seed memory":          {edit: annotate(contract.AnnotationSeedMemory, "ghs_"+body)},
		"token as storage class":        {edit: annotate(contract.AnnotationStorageClass, "glpat-"+strings.ToLower(body)+"_")},
		"token in a hand-edited record": {edit: annotate(contract.AnnotationInjected, `{"version":"v2","container":"ghp_`+body+`"}`), unlabel: true},
	} {
		t.Run(name, func(t *testing.T) {
			var logged strings.Builder
			ctx := logf.IntoContext(context.Background(), funcr.New(func(prefix, args string) { logged.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 9}))
			d := injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
			if tc.unlabel {
				injected, _ := mustInject(t, d)
				d = injected
				delete(d.Labels, contract.LabelInject)
			}
			tc.edit(d)
			raw := injectiontest.MustJSON(t, d)
			resp := newHandler().Handle(ctx, request(admissionv1.Update, raw, raw))
			text := resp.Result.Message + "\n" + strings.Join(resp.Warnings, "\n") + "\n" + logged.String()
			if strings.Contains(strings.ToLower(text), strings.ToLower(body)) {
				t.Errorf("a token is repeated:\n%s", text)
			}
			if !strings.Contains(text, "REDACTED") {
				t.Errorf("the value was not quoted at all (the case tests nothing):\n%s", text)
			}
		})
	}
}
