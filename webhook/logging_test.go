package webhook

import (
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
)

// A review's values appear on every line logged for it, as with
// controller-runtime's default constructor, and on nothing else.
func TestLogConstructorAddsTheRequestToLoggedLines(t *testing.T) {
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: 0})
	req := request(admissionv1.Create, []byte(`{}`), nil)
	log := LogConstructor(base, &req)
	log.V(1).Info("quiet")
	if len(lines) != 0 {
		t.Fatalf("a disabled level logged %q", lines)
	}
	log.Info("denied", "reason", "r")
	log.WithValues("k", "v").Error(nil, "failed")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", lines)
	}
	for _, l := range lines {
		for _, want := range []string{`"namespace"="opencode"`, `"name"="ws"`, `"requestID"="uid"`} {
			if !strings.Contains(l, want) {
				t.Errorf("line %s lacks %s", l, want)
			}
		}
	}
	if !strings.Contains(lines[0], `"reason"="r"`) || !strings.Contains(lines[1], `"k"="v"`) {
		t.Errorf("the line's own values are lost: %q", lines)
	}
}
