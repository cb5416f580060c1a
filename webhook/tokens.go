package webhook

import (
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
)

// withoutTokens hides every token-like value in an answer's message and
// warnings: they end up in the API client's output, the HelmRelease's
// status and CI logs, and may quote any value a user pasted.
func withoutTokens(resp admission.Response) admission.Response {
	if resp.Result != nil {
		resp.Result.Message = contract.HideTokens(resp.Result.Message)
	}
	for i, w := range resp.Warnings {
		resp.Warnings[i] = contract.HideTokens(w)
	}
	return resp
}
