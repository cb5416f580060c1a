package seed

import (
	"bytes"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/contract"
)

// Issue 18 review, finding 4: whatever the seed prints on failure goes
// through contract.HideTokens, since the kubelet copies it into the Pod's
// status (terminationMessagePolicy FallbackToLogsOnError): a token-like
// value in any flag, the token of the Secret or not, never shows. Both
// error paths are run: the flags' (--stall-timeout) and Run's (--workspace).
func TestSeedOutputHidesTokenLikeValues(t *testing.T) {
	t.Setenv(contract.EnvToken, "")
	const pasted = "ghp_Abcdef0123456789Abcdef0123456789abcd"
	for name, args := range map[string][]string{
		"a flag's error": {"--stall-timeout", pasted},
		"Run's error":    {"--repo", "acme/tools", "--workspace", "relative/" + pasted},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != ExitUsage {
			t.Errorf("%s: exit %d, want %d", name, code, ExitUsage)
		}
		if out := stdout.String() + stderr.String(); strings.Contains(out, pasted[4:]) || !strings.Contains(out, "REDACTED") {
			t.Errorf("%s: the output shows the token-like value: %q", name, out)
		}
	}
}
