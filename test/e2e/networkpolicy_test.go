package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/test/testenv"
)

func networkPolicy(t *testing.T, docs [][]byte) networkingv1.NetworkPolicy {
	t.Helper()
	for _, doc := range docs {
		var np networkingv1.NetworkPolicy
		if yaml.Unmarshal(doc, &np) == nil && np.Kind == "NetworkPolicy" {
			return np
		}
	}
	t.Fatal("no NetworkPolicy")
	return networkingv1.NetworkPolicy{}
}

func selects(t *testing.T, sel metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(podLabels))
}

// TestInjectorNetworkPolicy: the component's policy selects the injector's
// pods, and its webhook port admits an address block (the API server's
// nodes) and no pod or namespace.
func TestInjectorNetworkPolicy(t *testing.T) {
	docs, err := renderDir(t, filepath.Join(root, "deploy", "components", "networkpolicy"))
	if err != nil {
		t.Fatal(err)
	}
	np := networkPolicy(t, docs)
	var injector appsv1.Deployment
	for _, doc := range docs {
		var d appsv1.Deployment
		if yaml.Unmarshal(doc, &d) == nil && d.Kind == "Deployment" {
			injector = d
		}
	}
	if !selects(t, np.Spec.PodSelector, injector.Spec.Template.Labels) {
		t.Errorf("the policy does not select the injector's pods %v", injector.Spec.Template.Labels)
	}
	webhookRules := 0
	for _, rule := range np.Spec.Ingress {
		if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntValue() == 9443 }) {
			continue
		}
		webhookRules++
		for _, from := range rule.From {
			if from.IPBlock == nil || from.PodSelector != nil || from.NamespaceSelector != nil {
				t.Errorf("the webhook port admits more than an address block: %+v", from)
			}
		}
	}
	if webhookRules != 1 {
		t.Errorf("%d rules for the webhook port, want 1", webhookRules)
	}
}

// TestWorkspaceNetworkPolicies: each example workspace's policy selects its
// pod, admits only the gateway's proxies, and lets it reach DNS and public
// addresses but none of the private ranges the cluster lives in.
func TestWorkspaceNetworkPolicies(t *testing.T) {
	for _, app := range []string{"opencode-flux", "opencode-ha"} {
		t.Run(app, func(t *testing.T) {
			docs, err := testenv.Render(filepath.Join(root, "deploy", "flux", "kubernetes", "apps", "opencode", app, "app"))
			if err != nil {
				t.Fatal(err)
			}
			var text [][]byte
			for _, d := range docs {
				text = append(text, []byte(strings.ReplaceAll(string(d), "${APP}", app)))
			}
			np := networkPolicy(t, text)
			pod := fixture(t, strings.TrimPrefix(app, "opencode-"), "opencode")
			if !selects(t, np.Spec.PodSelector, pod.Spec.Template.Labels) {
				t.Errorf("the policy does not select the workspace's pod %v", pod.Spec.Template.Labels)
			}
			if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 || np.Spec.Ingress[0].From[0].NamespaceSelector == nil {
				t.Errorf("ingress is not only from the gateway: %+v", np.Spec.Ingress)
			}
			var except []string
			for _, rule := range np.Spec.Egress {
				for _, to := range rule.To {
					if to.IPBlock != nil {
						except = append(except, to.IPBlock.Except...)
					}
				}
			}
			for _, private := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
				if !slices.Contains(except, private) {
					t.Errorf("egress reaches %s", private)
				}
			}
		})
	}
}
