package node_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/test/node"
)

// upgradedVersion is compiled into the second injector image, which makes
// its digest differ from the first's.
const upgradedVersion = injectorVersion + "-upgraded"

// restartedAtAnnotation is what `kubectl rollout restart` sets on the Pod
// template.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// checkDay2 runs the day-2 operations on the running workspace (d, served
// by pod): the injector upgraded to an image with another digest leaves
// the Pod untouched through repeated server-side applies of the unchanged
// manifest (as helm-controller reconciles); `kubectl rollout restart` then
// moves it to the new seed image; with the injector's Pods stopped, a
// labeled create is refused (fail closed) while the workspace keeps
// serving. The injector is running again when it returns.
func checkDay2(t *testing.T, c *node.Cluster, cl client.Client, d *unstructured.Unstructured, pod *corev1.Pod) {
	ctx := context.Background()
	upgraded, err := importInjectorImage(ctx, c, upgradedVersion)
	if err != nil {
		t.Fatal(err)
	}
	if upgraded == injectorDigest {
		t.Fatalf("the upgraded injector image has the first one's digest %s", upgraded)
	}
	if err := applyInstall(ctx, c, cl, upgraded, gitServer(t).Host); err != nil {
		t.Fatalf("upgrade the injector: %v", err)
	}
	// Until then an old Pod may still answer the reconcile below.
	waitInjectorServedBy(t, c, upgraded)

	// helm-controller reconciles the unchanged manifest: nothing rolls.
	before := replicaSets(t, c)
	for range 3 {
		applyAsHelm(t, cl, d)
	}
	if _, err := waitAvailable(ctx, c, workspaceNS, "opencode-flux", time.Minute); err != nil {
		t.Fatal(err)
	}
	if after := replicaSets(t, c); !slices.Equal(after, before) {
		t.Errorf("applies of the unchanged manifest after the upgrade rolled the workspace: replica sets %v, were %v", after, before)
	}
	same, err := c.Client.CoreV1().Pods(workspaceNS).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || same.UID != pod.UID || same.DeletionTimestamp != nil {
		t.Errorf("the workspace Pod %s (%s) did not stay after the upgrade: %v\n%s", pod.Name, pod.UID, err, podsStatus(ctx, c, workspaceNS))
	}

	// kubectl rollout restart brings the new seed image.
	restart := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartedAtAnnotation, time.Now().Format(time.RFC3339))
	if _, err := c.Client.AppsV1().Deployments(workspaceNS).Patch(ctx, "opencode-flux", types.StrategicMergePatchType, restart,
		metav1.PatchOptions{FieldManager: "kubectl-rollout"}); err != nil {
		t.Fatalf("rollout restart: %v", err)
	}
	pod = waitWorkspaceReady(t, c, pod.Name)
	if got, want := pod.Spec.InitContainers[0].Image, node.InjectorImageRepo+"@"+upgraded; got != want {
		t.Errorf("after the restart the seed image is %s, want the upgraded injector's %s", got, want)
	}
	url := "http://" + pod.Status.PodIP + ":4096/session"
	if code := get(t, url, password); code != http.StatusOK {
		t.Errorf("after the restart: %d, want 200", code)
	}

	// The injector's Pods stopped: labeled creates fail closed, the
	// workspace serves on.
	scaleInjector(t, c, 0)
	blocked := fixtureDeployment(t, "flux", workspaceNS)
	blocked.SetName("fail-closed")
	err = cl.Create(ctx, blocked)
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "`+mutatingWebhook+`"`) {
		t.Errorf("with no injector running, a labeled create returned %v, want the mutating webhook %s failing closed", err, mutatingWebhook)
	} else {
		t.Logf("with no injector running, a labeled create is refused: %v", err)
	}
	if _, err := c.Client.AppsV1().Deployments(workspaceNS).Get(ctx, blocked.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("with no injector running, Deployment %s exists (get: %v), want it refused", blocked.GetName(), err)
	}
	if code := get(t, url, password); code != http.StatusOK {
		t.Errorf("with no injector running, the workspace answers %d, want 200", code)
	}
	scaleInjector(t, c, 2)
}

// mutatingWebhook is deploy/'s mutating webhook's name.
const mutatingWebhook = "inject.opencode.angryninja.cloud"

// waitInjectorServedBy waits until the injector's Service has as ready
// endpoints exactly the IPs of its Pods running the image digest, and no
// Pod with another image remains.
func waitInjectorServedBy(t *testing.T, c *node.Cluster, digest string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		upgraded, others, err := injectorPodIPs(ctx, c, digest)
		var ready []string
		if err == nil {
			ready, err = readyEndpoints(ctx, c, injectorNamespace, "opencode-injector")
		}
		if err == nil && len(others) == 0 && len(upgraded) > 0 && slices.Equal(ready, upgraded) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the injector's Service is not served by its upgraded Pods only: ready endpoints %v, upgraded Pods %v, other Pods %v (%v)\n%s",
				ready, upgraded, others, err, podsStatus(ctx, c, injectorNamespace))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// injectorPodIPs is the sorted IPs of the injector's Pods running the
// image digest, and the names of its other Pods (another image, or
// terminating).
func injectorPodIPs(ctx context.Context, c *node.Cluster, digest string) (ips, others []string, err error) {
	pods, err := c.Client.CoreV1().Pods(injectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=opencode-injector"})
	if err != nil {
		return nil, nil, fmt.Errorf("list the injector's pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && strings.HasSuffix(p.Spec.Containers[0].Image, "@"+digest) && p.Status.PodIP != "" {
			ips = append(ips, p.Status.PodIP)
		} else {
			others = append(others, p.Name)
		}
	}
	slices.Sort(ips)
	return ips, others, nil
}

// readyEndpoints is the sorted ready addresses of the Service's
// EndpointSlices, where the API server sends webhook calls.
func readyEndpoints(ctx context.Context, c *node.Cluster, ns, service string) ([]string, error) {
	list, err := c.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil, fmt.Errorf("list the endpoint slices of %s/%s: %w", ns, service, err)
	}
	var ready []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready = append(ready, e.Addresses...)
			}
		}
	}
	slices.Sort(ready)
	return ready, nil
}

// replicaSets is the names of the workspace's ReplicaSets, sorted.
func replicaSets(t *testing.T, c *node.Cluster) []string {
	t.Helper()
	list, err := c.Client.AppsV1().ReplicaSets(workspaceNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rs := range list.Items {
		names = append(names, rs.Name)
	}
	slices.Sort(names)
	return names
}

// scaleInjector scales the injector's Deployment and waits until it has
// exactly that many Pods, available.
func scaleInjector(t *testing.T, c *node.Cluster, replicas int32) {
	t.Helper()
	ctx := context.Background()
	deployments := c.Client.AppsV1().Deployments(injectorNamespace)
	s, err := deployments.GetScale(ctx, "opencode-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := deployments.UpdateScale(ctx, "opencode-injector", s, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scale the injector to %d: %v", replicas, err)
	}
	if _, err := waitAvailable(ctx, c, injectorNamespace, "opencode-injector", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := c.Client.CoreV1().Pods(injectorNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=opencode-injector"})
		if err == nil && int32(len(pods.Items)) == replicas {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the injector has not %d pods: %v\n%s", replicas, err, podsStatus(ctx, c, injectorNamespace))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
