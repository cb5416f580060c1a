package main

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
)

// checkWorkspaces checks every labeled Deployment: injected, record
// trusted, scale guard, claim bound, password Secret, last seed exit.
func checkWorkspaces(ctx context.Context, c client.Client, r *report, st injectorState) {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.MatchingLabels{contract.LabelInject: contract.LabelInjectEnabled}); err != nil {
		r.section("workspaces")
		r.fail("labeled Deployments", "list: "+err.Error(), "run check with a kubeconfig that may list deployments in every namespace")
		return
	}
	if len(list.Items) == 0 {
		r.section("workspaces: no Deployment labeled " + contract.LabelInject + "=" + contract.LabelInjectEnabled)
		return
	}
	for i := range list.Items {
		checkWorkspace(ctx, c, r, st, &list.Items[i])
	}
}

func checkWorkspace(ctx context.Context, c client.Client, r *report, st injectorState, d *appsv1.Deployment) {
	r.section("workspace " + d.Namespace + "/" + d.Name)
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: d.Namespace}, &ns); err != nil {
		r.fail("namespace "+d.Namespace, err.Error(), "run check with a kubeconfig that may get namespaces")
		return
	}
	if !checkInjected(r, st, d, ns) {
		return
	}
	if problem := injection.RecordProblem(d); problem != "" {
		r.fail("record", problem, "the record is the webhook's alone: to start clean, remove the label "+contract.LabelInject+
			" (the injection is removed by name), review the Deployment, then label it again")
	} else {
		r.pass("record", "annotation "+contract.AnnotationInjected+" agrees with the Deployment")
	}
	checkScaleGuard(r, st, ns)
	ps := d.Spec.Template.Spec
	checkClaim(ctx, c, r, d.Namespace, ps)
	checkPasswordSecret(ctx, c, r, d.Namespace, ps)
	if name := d.Annotations[contract.AnnotationCABundle]; name != "" {
		checkCABundleConfigMap(ctx, c, r, d.Namespace, name)
	}
	checkSeedExit(ctx, c, r, d)
}

// checkInjected reports whether the webhook injected d, and why not.
func checkInjected(r *report, st injectorState, d *appsv1.Deployment, ns corev1.Namespace) bool {
	if !injection.IsInjected(d) {
		reason, fix := "not injected: it was created or last changed while the webhook did not see it",
			"once the injector is ready, update it: kubectl -n "+d.Namespace+" rollout restart deployment "+d.Name+" (or flux reconcile its Kustomization)"
		if st.inject != nil && !selects(st.inject.namespaceSelector, ns) {
			reason, fix = "not injected: the webhook's namespaceSelector excludes namespace "+d.Namespace, "move the workspace to another namespace (the injector's own and kube-system never hold workspaces)"
		}
		r.fail("injected", reason, fix)
		return false
	}
	seed := slices.IndexFunc(d.Spec.Template.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == contract.SeedContainerName })
	detail := "by the webhook"
	if seed >= 0 {
		image := d.Spec.Template.Spec.InitContainers[seed].Image
		detail = "seed image " + image
		if len(st.seedImages) > 0 && !slices.Contains(st.seedImages, image) {
			detail += fmt.Sprintf(" (the injector now injects %s: the workspace rolls once, on its next update)", st.seedImages[0])
		}
	}
	r.pass("injected", detail)
	return true
}

// checkScaleGuard reports whether the scale guard covers the namespace.
func checkScaleGuard(r *report, st injectorState, ns corev1.Namespace) {
	if st.scale == nil {
		return // reported with the injector
	}
	if !selects(st.scale.namespaceSelector, ns) {
		r.fail("scale guard", "namespace "+ns.Name+" is not labeled "+contract.LabelWorkspaces+"=true, so kubectl scale or an HPA can run two Pods on one claim",
			"kubectl label namespace "+ns.Name+" "+contract.LabelWorkspaces+"=true")
		return
	}
	r.pass("scale guard", "covers namespace "+ns.Name)
}

// selects reports whether a webhook's namespaceSelector matches ns (no
// selector matches every namespace).
func selects(sel *metav1.LabelSelector, ns corev1.Namespace) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(ns.Labels))
}

// checkClaim reads the claim the injected volume mounts.
func checkClaim(ctx context.Context, c client.Client, r *report, namespace string, ps corev1.PodSpec) {
	i := slices.IndexFunc(ps.Volumes, func(v corev1.Volume) bool {
		return v.Name == contract.DataVolumeName && v.PersistentVolumeClaim != nil
	})
	if i < 0 {
		r.fail("claim", "the pod template has no "+contract.DataVolumeName+" claim volume", "re-inject: remove the label, then add it again")
		return
	}
	name := ps.Volumes[i].PersistentVolumeClaim.ClaimName
	what := "claim " + name
	var pvc corev1.PersistentVolumeClaim
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pvc); err != nil {
		r.fail(what, err.Error(), "declare the claim in Git beside the workspace, or set annotation "+contract.AnnotationStorage+" so the injector creates it")
		return
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		r.fail(what, fmt.Sprintf("%s, not Bound: the Pod cannot start", orNone(string(pvc.Status.Phase))),
			"kubectl -n "+namespace+" describe pvc "+name+" (its storage class and provisioner; a WaitForFirstConsumer class binds once the Pod is scheduled)")
		return
	}
	r.pass(what, "Bound to "+pvc.Spec.VolumeName)
}

// checkPasswordSecret reads the Secret and key the OpenCode container's
// password comes from; only whether the key holds something is printed.
func checkPasswordSecret(ctx context.Context, c client.Client, r *report, namespace string, ps corev1.PodSpec) {
	var ref *corev1.SecretKeySelector
	for _, ctr := range ps.Containers {
		for _, e := range ctr.Env {
			if e.Name == contract.EnvPassword && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref = e.ValueFrom.SecretKeyRef
			}
		}
	}
	if ref == nil {
		r.fail("password", "no container takes "+contract.EnvPassword+" from a Secret", "re-inject: remove the label, then add it again")
		return
	}
	what := "Secret " + ref.Name
	var secret corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &secret)
	if apierrors.IsForbidden(err) {
		r.fail(what, "check cannot read Secret "+namespace+"/"+ref.Name+": forbidden (needs get on secrets)",
			"run check with a kubeconfig that may get secrets in "+namespace+" (only whether key "+ref.Key+" holds something is printed)")
		return
	}
	if err != nil {
		r.fail(what, err.Error()+": the Pod fails with CreateContainerConfigError",
			"create it in "+namespace+" with key "+ref.Key+" (SOPS or an ExternalSecret; never committed in clear)")
		return
	}
	if len(secret.Data[ref.Key]) == 0 {
		r.fail(what, "holds no key "+ref.Key+" (or an empty one): the Pod fails with CreateContainerConfigError, since no password means no access",
			"add key "+ref.Key+" to Secret "+namespace+"/"+ref.Name)
		return
	}
	r.pass(what, "holds "+ref.Key)
}

// checkCABundleConfigMap reads the ConfigMap a workspace's ca-bundle
// annotation names: it must exist (else the Pod cannot start: its volume
// is missing) and hold PEM certificates in key ca.crt (else the seed exits
// 2).
func checkCABundleConfigMap(ctx context.Context, c client.Client, r *report, namespace, name string) {
	what := "ConfigMap " + name + " (annotation " + contract.AnnotationCABundle + ")"
	fix := "create ConfigMap " + name + " in " + namespace + " with the git host's CA certificates (PEM) in key " + contract.CABundleKey + " (trust-manager's Bundle can write it)"
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			r.fail(what, "not found: the Pod cannot start without it", fix)
			return
		}
		r.fail(what, err.Error(), "run check with a kubeconfig that may get configmaps in "+namespace)
		return
	}
	data, ok := cm.Data[contract.CABundleKey]
	if !ok {
		r.fail(what, "holds no key "+contract.CABundleKey, fix)
		return
	}
	certs, err := parseCertificates([]byte(data))
	if err != nil {
		r.fail(what, "key "+contract.CABundleKey+": "+err.Error()+": the seed exits 2", fix)
		return
	}
	r.pass(what, fmt.Sprintf("holds %d certificate(s) in %s", len(certs), contract.CABundleKey))
}
