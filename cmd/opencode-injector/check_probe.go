package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
)

// probeRepo is the probe's repository when no workspace lends its own: the
// webhook only parses it (a dry run clones nothing).
const probeRepo = "https://github.com/angryninja/opencode-injector"

// checkAPIPath takes the path the API server takes to the webhook, as
// `cmctl check api` does: a server-side dry-run create (nothing is stored)
// of a labeled Deployment. Every other check reads objects; only this one
// sees a NetworkPolicy, a firewall or a wrong Service port between the API
// server and the injector.
func checkAPIPath(ctx context.Context, c client.Client, r *report, inject *webhook, namespace string) {
	probe, err := probeDeployment(ctx, c, inject, namespace)
	what := "the API server's call to the webhook"
	if err != nil {
		r.fail(what, err.Error(), "name a namespace the webhook covers with --probe-namespace")
		return
	}
	what += " (dry-run create of a labeled Deployment in " + probe.Namespace + ")"
	err = c.Create(ctx, probe, client.DryRunAll)
	switch {
	case apierrors.IsForbidden(err) && !strings.Contains(err.Error(), "admission webhook"):
		r.fail(what, "check cannot create Deployments in "+probe.Namespace+": forbidden (needs create on deployments; a dry run stores nothing)",
			"run check with a kubeconfig that may create deployments there, or name another namespace with --probe-namespace")
	case err != nil && strings.Contains(err.Error(), "admission webhook \""+inject.name+"\" denied"):
		r.pass(what, "the webhook answered (it denied the probe: "+err.Error()+")")
	case err != nil && (strings.Contains(err.Error(), "x509: ") || strings.Contains(err.Error(), "tls: ")):
		r.fail(what, err.Error(), "the API server reaches the webhook but does not trust its certificate: repair the caBundle or the serving certificate (the lines above)")
	case err != nil:
		r.fail(what, err.Error(),
			"the API server cannot reach the webhook: check the NetworkPolicy's controlPlaneCIDRs (the API server's addresses must reach the injector's port), firewalls between the control plane and the nodes, and the Service's port")
	case !slices.ContainsFunc(probe.Spec.Template.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == contract.SeedContainerName }):
		r.fail(what, "the API server answered without the webhook's injection (its failurePolicy is Ignore, or the namespace is outside its namespaceSelector)",
			"the API server cannot reach the webhook: check the NetworkPolicy's controlPlaneCIDRs and the webhook's failurePolicy (Fail, as deploy/ sets it); a --probe-namespace must be one the webhook covers")
	default:
		r.pass(what, "the webhook injected it")
	}
}

// probeDeployment is a minimal labeled Deployment in a namespace the
// webhook covers: the one asked for, else a workspace's (lending its repo
// annotation, which the webhook allows), else the first the webhook's
// namespaceSelector selects. It asks for no storage, so the dry run has no
// side effect to refuse.
func probeDeployment(ctx context.Context, c client.Client, inject *webhook, namespace string) (*appsv1.Deployment, error) {
	repo := probeRepo
	var workspaces appsv1.DeploymentList
	if err := c.List(ctx, &workspaces, client.MatchingLabels{contract.LabelInject: contract.LabelInjectEnabled}); err != nil {
		return nil, fmt.Errorf("list labeled Deployments: %w", err)
	}
	covered := func(name string) bool {
		var ns corev1.Namespace
		return c.Get(ctx, client.ObjectKey{Name: name}, &ns) == nil && selects(inject.namespaceSelector, ns)
	}
	for _, d := range workspaces.Items {
		if d.Annotations[contract.AnnotationRepo] != "" && (namespace == d.Namespace || namespace == "" && covered(d.Namespace)) {
			namespace, repo = d.Namespace, d.Annotations[contract.AnnotationRepo]
			break
		}
	}
	if namespace == "" {
		var namespaces corev1.NamespaceList
		if err := c.List(ctx, &namespaces); err != nil {
			return nil, fmt.Errorf("list namespaces to find one the webhook covers: %w", err)
		}
		i := slices.IndexFunc(namespaces.Items, func(ns corev1.Namespace) bool { return selects(inject.namespaceSelector, ns) })
		if i < 0 {
			return nil, errors.New("no namespace the webhook's namespaceSelector covers")
		}
		namespace = namespaces.Items[i].Name
	}
	labels := map[string]string{"app.kubernetes.io/name": "opencode-injector-check"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			// A generated name: a dry run reserves none, so no Deployment
			// of the namespace can clash with the probe. The webhook sees
			// the name still empty, so the claim is named (nothing asks
			// for storage: no claim is made).
			GenerateName: "opencode-injector-check-", Namespace: namespace,
			Labels:      map[string]string{contract.LabelInject: contract.LabelInjectEnabled},
			Annotations: map[string]string{contract.AnnotationRepo: repo, contract.AnnotationClaim: "opencode-injector-check"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}, nil
}
