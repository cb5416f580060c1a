package main

import "testing"

// TestDescribeCertificate: the fix names the Certificate the webhooks'
// inject-ca-from annotation names, wherever the release put it.
func TestDescribeCertificate(t *testing.T) {
	ann := map[string]string{"cert-manager.io/inject-ca-from": "infra/oc-serving"}
	for _, c := range []struct {
		webhooks []*webhook
		want     string
	}{
		{[]*webhook{nil, {annotations: ann}}, "kubectl -n infra describe certificate oc-serving"},
		{[]*webhook{{}}, "kubectl -n infra describe certificates"},
	} {
		if got := describeCertificate(c.webhooks, "infra"); got != c.want {
			t.Errorf("describeCertificate: %q, want %q", got, c.want)
		}
	}
}
