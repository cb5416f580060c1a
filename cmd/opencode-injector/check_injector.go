package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/contract"
)

// The webhooks deploy/ registers, found by name in whatever configuration
// holds them.
var (
	injectWebhook = "inject." + strings.TrimSuffix(contract.Prefix, "/")
	scaleWebhook  = "scale." + strings.TrimSuffix(contract.Prefix, "/")
)

// webhook is one registered webhook of either kind.
type webhook struct {
	kind, config, name string
	annotations        map[string]string
	clientConfig       admissionregistrationv1.WebhookClientConfig
	namespaceSelector  *metav1.LabelSelector
}

func (w webhook) String() string { return w.kind + " " + w.config + " webhook " + w.name }

// injectorState is what the workspace checks need from the injector's.
type injectorState struct {
	inject, scale *webhook
	seedImages    []string // what the ready replicas inject now
}

// checkInjector checks the webhook configurations, their caBundle against
// the serving certificate, its expiry, the endpoints, the replicas and the
// seed image they resolved.
func checkInjector(ctx context.Context, c client.Client, r *report, o checkOptions) injectorState {
	r.section("opencode-injector")
	var st injectorState
	st.inject, st.scale = findWebhooks(ctx, c, r)
	if st.inject == nil {
		return st
	}
	ref := st.inject.clientConfig.Service
	if ref == nil {
		r.fail(st.inject.String(), "clientConfig names a url, not the injector's Service, so check cannot find the injector",
			"register it through the Service, as deploy/ does")
		return st
	}
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &svc); err != nil {
		r.fail("Service "+ref.Namespace+"/"+ref.Name, err.Error(), "install deploy/ (or the chart) whole: the webhooks call this Service")
		return st
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(svc.Namespace), client.MatchingLabels(svc.Spec.Selector)); err != nil {
		r.fail("injector Pods", "list: "+err.Error(), "grant your user list on pods in "+svc.Namespace)
		return st
	}
	live := livePods(pods.Items)
	deployment := injectorDeployment(ctx, c, svc)
	checkServingCertificate(ctx, c, r, o, live, []*webhook{st.inject, st.scale}, svc)
	checkEndpoints(ctx, c, r, svc, servicePort(ref))
	checkReplicas(r, svc, deployment, live)
	st.seedImages = checkSeedImage(ctx, c, r, live)
	checkAPIPath(ctx, c, r, st.inject, o.probeNamespace)
	return st
}

// findWebhooks finds the configurations that register the injector's two
// webhooks, by the webhooks' names (deploy/ calls both configurations
// opencode-injector; a chart may prefix them).
func findWebhooks(ctx context.Context, c client.Client, r *report) (inject, scale *webhook) {
	var mutating admissionregistrationv1.MutatingWebhookConfigurationList
	var validating admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &mutating); err != nil {
		r.fail("webhook configurations", "list: "+err.Error(), "run check with a kubeconfig that may list webhook configurations")
		return nil, nil
	}
	if err := c.List(ctx, &validating); err != nil {
		r.fail("webhook configurations", "list: "+err.Error(), "run check with a kubeconfig that may list webhook configurations")
		return nil, nil
	}
	var found []webhook
	for _, cfg := range mutating.Items {
		for _, w := range cfg.Webhooks {
			found = append(found, webhook{mutatingKind, cfg.Name, w.Name, cfg.Annotations, w.ClientConfig, w.NamespaceSelector})
		}
	}
	for _, cfg := range validating.Items {
		for _, w := range cfg.Webhooks {
			found = append(found, webhook{validatingKind, cfg.Name, w.Name, cfg.Annotations, w.ClientConfig, w.NamespaceSelector})
		}
	}
	return pick(r, found, mutatingKind, injectWebhook), pick(r, found, validatingKind, scaleWebhook)
}

const (
	mutatingKind   = "MutatingWebhookConfiguration"
	validatingKind = "ValidatingWebhookConfiguration"
)

// pick reports whether the webhook name of kind is registered.
func pick(r *report, found []webhook, kind, name string) *webhook {
	i := slices.IndexFunc(found, func(w webhook) bool { return w.kind == kind && w.name == name })
	if i < 0 {
		r.fail(kind+" "+name, "not registered", "install deploy/ (kubectl apply -k, or the Flux example): without it nothing is injected")
		return nil
	}
	r.pass(found[i].String(), "registered")
	return &found[i]
}

// servicePort is the Service port the webhook calls (443 when unset).
func servicePort(ref *admissionregistrationv1.ServiceReference) int32 {
	if ref.Port != nil {
		return *ref.Port
	}
	return 443
}

// checkEndpoints counts the ready endpoints behind the webhook's port.
func checkEndpoints(ctx context.Context, c client.Client, r *report, svc corev1.Service, port int32) {
	what := fmt.Sprintf("endpoints of Service %s/%s port %d", svc.Namespace, svc.Name, port)
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port })
	if i < 0 {
		r.fail(what, "the Service has no such port", "restore the Service from deploy/")
		return
	}
	portName := svc.Spec.Ports[i].Name
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		r.fail(what, "list EndpointSlices: "+err.Error(), "grant your user list on endpointslices in "+svc.Namespace)
		return
	}
	ready := 0
	for _, s := range slices.Items {
		if !hasPort(s, portName) {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			}
		}
	}
	if ready == 0 {
		r.fail(what, "no ready endpoint, so every create or update of a labeled Deployment is refused (failurePolicy Fail)",
			"get a replica ready (see the Pods below: kubectl -n "+svc.Namespace+" describe pods -l "+labels.Set(svc.Spec.Selector).String()+")")
		return
	}
	r.pass(what, fmt.Sprintf("%d ready", ready))
}

func hasPort(s discoveryv1.EndpointSlice, name string) bool {
	return slices.ContainsFunc(s.Ports, func(p discoveryv1.EndpointPort) bool { return p.Name != nil && *p.Name == name })
}

// livePods leaves out the Pods that no longer count: ended (an Evicted
// Pod stays behind in phase Failed) or being deleted.
func livePods(pods []corev1.Pod) []corev1.Pod {
	return slices.DeleteFunc(slices.Clone(pods), func(p corev1.Pod) bool {
		return p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
	})
}

// injectorDeployment is the Deployment whose Pods the Service selects, so
// fix texts name the real one; nil when check cannot find it.
func injectorDeployment(ctx context.Context, c client.Client, svc corev1.Service) *appsv1.Deployment {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(svc.Namespace)); err != nil {
		return nil
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	i := slices.IndexFunc(list.Items, func(d appsv1.Deployment) bool { return selector.Matches(labels.Set(d.Spec.Template.Labels)) })
	if i < 0 {
		return nil
	}
	return &list.Items[i]
}

// describeInjector is the command that says why the injector's Pods are
// missing or not ready.
func describeInjector(svc corev1.Service, d *appsv1.Deployment) string {
	if d == nil {
		return "kubectl -n " + svc.Namespace + " get deployments,replicasets (no Deployment there runs Pods that Service " + svc.Name + " selects)"
	}
	return "kubectl -n " + d.Namespace + " describe deployment " + d.Name + " (its ReplicaSet's events say why)"
}

// checkReplicas reports each live injector Pod's readiness (a replica is
// ready once it serves and knows its seed image), and the ready count
// against the Deployment's desired one when Pods are missing.
func checkReplicas(r *report, svc corev1.Service, d *appsv1.Deployment, pods []corev1.Pod) {
	if len(pods) == 0 {
		r.fail("injector Pods", "none running matches the Service's selector", describeInjector(svc, d))
		return
	}
	ready := 0
	for _, p := range pods {
		what := "Pod " + p.Namespace + "/" + p.Name
		if ok, why := podReady(p); !ok {
			r.fail(what, "not ready: "+why, "kubectl -n "+p.Namespace+" logs "+p.Name+" (a replica stays not ready until it knows its seed image)")
			continue
		}
		ready++
		r.pass(what, "ready")
	}
	if d == nil || ready < len(pods) {
		return // no desired count, or the not-ready Pods above say why
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	what := "Deployment " + d.Namespace + "/" + d.Name
	if int32(ready) < want {
		r.fail(what, fmt.Sprintf("%d of %d replicas ready", ready, want), describeInjector(svc, d))
		return
	}
	r.pass(what, fmt.Sprintf("%d of %d replicas ready", ready, want))
}

// podReady reads the Pod's Ready condition, and says why when it is not.
func podReady(p corev1.Pod) (bool, string) {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			if cond.Status == corev1.ConditionTrue {
				return true, ""
			}
			return false, strings.TrimSpace(cond.Reason + " " + cond.Message)
		}
	}
	return false, "phase " + string(p.Status.Phase) + ", no Ready condition yet"
}

// checkSeedImage reports the seed image each ready replica injects: its
// --seed-image, else its own image pinned by the digest its Pod reports,
// read by the very function the injector reads it with.
func checkSeedImage(ctx context.Context, c client.Client, r *report, pods []corev1.Pod) []string {
	var images []string
	for _, p := range pods {
		if ready, _ := podReady(p); !ready {
			continue
		}
		ctr, ok := injectorContainer(p)
		if !ok {
			continue
		}
		image := flagValue(ctr.Args, "seed-image", "")
		source := "--seed-image of Pod " + p.Name
		if image == "" {
			self := app.Self{Namespace: p.Namespace, Pod: p.Name, Container: flagValue(ctr.Args, "self-container", "injector")}
			var err error
			if image, err = app.OwnImage(ctx, c, self); err != nil {
				r.fail("seed image of Pod "+p.Name, err.Error(), "set --seed-image, or pull the injector's image from a registry so the kubelet reports its digest")
				continue
			}
			source = "the injector's own image, pinned by the digest Pod " + p.Name + " reports"
		}
		if !slices.Contains(images, image) {
			images = append(images, image)
			r.pass("seed image", image+" ("+source+")")
		}
	}
	if len(images) > 1 {
		r.pass("seed images", fmt.Sprintf("%d differ between replicas: a rollout of the injector is under way", len(images)))
	}
	return images
}

// injectorContainer is the container that runs `opencode-injector serve`.
func injectorContainer(p corev1.Pod) (corev1.Container, bool) {
	i := slices.IndexFunc(p.Spec.Containers, func(c corev1.Container) bool { return len(c.Args) > 0 && c.Args[0] == "serve" })
	if i < 0 {
		return corev1.Container{}, false
	}
	return p.Spec.Containers[i], true
}

// flagValue is the value of flag name in a container's args as Go's flag
// package reads them (-name=v, --name=v, -name v, --name v), else def.
func flagValue(args []string, name, def string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			def = v
		} else if a == name && i+1 < len(args) && args[i] != a {
			def = args[i+1]
		}
	}
	return def
}
