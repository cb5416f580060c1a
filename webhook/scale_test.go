package webhook

import (
	"context"
	"errors"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// These tests guard the scale guard without an API server: controller-
// runtime's fake client stands for the manager's cache and the live reader.

func deployment(namespace, name string, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels}}
}

var workspaceLabel = map[string]string{contract.LabelInject: contract.LabelInjectEnabled}

func scaleRequest(t *testing.T, namespace, name string, replicas int32) admission.Request {
	t.Helper()
	scale := autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid", Operation: admissionv1.Update, SubResource: "scale", Namespace: namespace, Name: name,
		Object: runtime.RawExtension{Raw: injectiontest.MustJSON(t, scale)},
	}}
}

// readerOf refuses typed Deployment reads: the manager's cache holds the
// Deployments' metadata only, and a typed read would start a second
// informer holding whole objects.
func readerOf(objs ...client.Object) client.Reader {
	return interceptor.NewClient(fake.NewClientBuilder().WithObjects(objs...).Build(), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, typed := obj.(*appsv1.Deployment); typed {
				return errors.New("a typed Deployment read: read provision.DeploymentMetadata")
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
}

func TestScaleGuard(t *testing.T) {
	labeled := deployment("opencode", "ws", workspaceLabel)
	for _, c := range []struct {
		name        string
		cache, live client.Reader
		namespace   string
		replicas    int32
		allowed     bool
	}{
		{"a workspace above one replica is refused (the limit)", readerOf(labeled), nil, "opencode", 2, false},
		{"one replica is a way out", readerOf(labeled), nil, "opencode", 1, true},
		{"zero replicas is a way out", readerOf(labeled), nil, "opencode", 0, true},
		{"a Deployment without the label is not a workspace", readerOf(deployment("opencode", "ws", nil)), nil, "opencode", 5, true},
		{"a label other than true is not a workspace", readerOf(deployment("opencode", "ws", map[string]string{contract.LabelInject: "false"})), nil, "opencode", 5, true},
		{"the same name in another namespace is not the workspace", readerOf(labeled), readerOf(labeled), "other", 2, true},
		{"a cache miss is confirmed with the API server", readerOf(), readerOf(labeled), "opencode", 2, false},
		{"a miss in both is not a workspace", readerOf(), readerOf(), "opencode", 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &ScaleGuard{Deployments: c.cache, Live: c.live}
			resp := g.Handle(context.Background(), scaleRequest(t, c.namespace, "ws", c.replicas))
			if resp.Allowed != c.allowed {
				t.Fatalf("allowed=%v, want %v: %s", resp.Allowed, c.allowed, resp.Result.Message)
			}
			if !c.allowed && resp.Result.Code != http.StatusForbidden {
				t.Errorf("a refusal answered code %d, want 403", resp.Result.Code)
			}
		})
	}
}

// A failed lookup fails closed: the guard cannot tell a workspace apart.
func TestScaleGuardFailsClosedOnLookupError(t *testing.T) {
	broken := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errors.New("connection refused")
		},
	}).Build()
	g := &ScaleGuard{Deployments: readerOf(), Live: broken}
	resp := g.Handle(context.Background(), scaleRequest(t, "opencode", "ws", 2))
	if resp.Allowed || resp.Result.Code != http.StatusInternalServerError {
		t.Errorf("a failed lookup answered allowed=%v code %d, want a refusal with 500", resp.Allowed, resp.Result.Code)
	}
}

// Only updates of the scale subresource are judged; a Scale that cannot
// be decoded is refused.
func TestScaleGuardJudgesScaleUpdatesOnly(t *testing.T) {
	g := &ScaleGuard{Deployments: readerOf(deployment("opencode", "ws", workspaceLabel))}
	req := scaleRequest(t, "opencode", "ws", 2)
	req.SubResource = ""
	if resp := g.Handle(context.Background(), req); !resp.Allowed {
		t.Errorf("a request that is not of the scale subresource was judged: %s", resp.Result.Message)
	}
	req = scaleRequest(t, "opencode", "ws", 2)
	req.Operation = admissionv1.Create
	if resp := g.Handle(context.Background(), req); !resp.Allowed {
		t.Errorf("a scale request that is not an update was judged: %s", resp.Result.Message)
	}
	req = scaleRequest(t, "opencode", "ws", 2)
	req.Object.Raw = []byte(`{"spec":{"replicas":"two"}}`)
	if resp := g.Handle(context.Background(), req); resp.Allowed || resp.Result.Code != http.StatusBadRequest {
		t.Errorf("an undecodable Scale answered allowed=%v code %d, want a refusal with 400", resp.Allowed, resp.Result.Code)
	}
}
