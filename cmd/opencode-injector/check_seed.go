package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/seed"
)

// checkSeedExit reads the seed init container's last exit in the newest
// Pod of d, and explains a failure with its fix.
func checkSeedExit(ctx context.Context, c client.Client, r *report, d *appsv1.Deployment) {
	const what = "seed"
	if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
		r.pass(what, "scaled to 0, no Pod")
		return
	}
	var pods corev1.PodList
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		r.fail(what, "the Deployment's selector: "+err.Error(), "fix spec.selector")
		return
	}
	if err := c.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		r.fail(what, "list Pods: "+err.Error(), "run check with a kubeconfig that may list pods in "+d.Namespace)
		return
	}
	if len(pods.Items) == 0 {
		r.fail(what, "no Pod", "kubectl -n "+d.Namespace+" describe deployment "+d.Name+" (its ReplicaSet's events say why)")
		return
	}
	p := slices.MaxFunc(pods.Items, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	where := "Pod " + p.Name + ": "
	i := slices.IndexFunc(p.Status.InitContainerStatuses, func(s corev1.ContainerStatus) bool { return s.Name == contract.SeedContainerName })
	if i < 0 {
		_, why := podReady(p)
		r.fail(what, where+"not started yet ("+why+")", "kubectl -n "+d.Namespace+" describe pod "+p.Name)
		return
	}
	st := p.Status.InitContainerStatuses[i]
	term := st.State.Terminated
	if term == nil {
		term = st.LastTerminationState.Terminated
	}
	switch {
	case st.State.Running != nil:
		r.pass(what, where+"running (a first clone takes as long as the repository needs)")
	case term == nil:
		r.fail(what, where+"waiting: "+waitingReason(st), "kubectl -n "+d.Namespace+" describe pod "+p.Name)
	case term.ExitCode == seed.ExitOK && term.Reason != "OOMKilled":
		r.pass(what, where+"last exit 0, the clone is in place")
	default:
		reason, fix := seedExitMeaning(term, seedMemoryLimit(p.Spec), d.Annotations[contract.AnnotationCABundle])
		if msg := firstLine(term.Message); msg != "" {
			reason += " (the seed said: " + msg + ")"
		}
		r.fail(what, where+reason, fix)
	}
}

// seedExitMeaning explains an exit of `opencode-injector seed` (its exit
// codes) and says what to do; caBundle is the Deployment's ca-bundle
// annotation (empty: none).
func seedExitMeaning(t *corev1.ContainerStateTerminated, limit, caBundle string) (reason, fix string) {
	raise := "raise annotation " + contract.AnnotationSeedMemory + " on the Deployment (now " + limit + "), then delete the Pod"
	switch code := t.ExitCode; {
	case t.Reason == "OOMKilled" || code == 137:
		return "OOMKilled: the kernel killed the seed at its memory limit " + limit + ", which its own budget (85% of the limit) is there to prevent", raise
	case code == seed.ExitMemory:
		return "exit 8: an object of the repository needs more memory than the limit " + limit + " allows; the seed stopped before running out", raise
	case code == seed.ExitWorkspace:
		return "exit 7: the workspace path holds something else, or a damaged clone; the seed never deletes it (it may hold unpushed work)",
			"mount the claim in a debug Pod, move the directory aside (or repair the clone) as the seed's message says, then delete the Pod"
	case code == seed.ExitAuth:
		return "exit 3: the git host refused the token (401/403)", "put a token that may read the repository in key " + contract.SecretKeyToken + " of the workspace's Secret"
	case code == seed.ExitNotFound:
		return "exit 4: repository or branch not found", "check annotations " + contract.AnnotationRepo + " and " + contract.AnnotationBranch + " (a private repository needs a token that can see it)"
	case code == seed.ExitNetwork && caBundle != "":
		return "exit 5: network, DNS, TLS or timeout", "check the workspace's egress (its NetworkPolicy) and DNS to the git host; if the host's certificate is untrusted, ConfigMap " + caBundle +
			" (annotation " + contract.AnnotationCABundle + ") must hold, in key " + contract.CABundleKey + ", the CA that signed it"
	case code == seed.ExitNetwork:
		return "exit 5: network, DNS, TLS or timeout", "check the workspace's egress (its NetworkPolicy) and DNS to the git host; if the host's certificate is untrusted (a self-hosted host), set annotation " +
			contract.AnnotationCABundle + " to a ConfigMap whose key " + contract.CABundleKey + " holds its CA"
	case code == seed.ExitDisk:
		return "exit 6: the claim is full or not writable", "expand the claim, or give the pod an fsGroup its user can write with"
	case code == seed.ExitUsage && caBundle != "" && (t.Message == "" || strings.Contains(t.Message, "CA bundle")):
		return "exit 2: the seed could not read the CA bundle", "put the git host's CA certificates (PEM) in key " + contract.CABundleKey + " of ConfigMap " + caBundle +
			" (annotation " + contract.AnnotationCABundle + "), then delete the Pod"
	case code == seed.ExitUsage:
		return "exit 2: the seed could not read its configuration", "re-inject with the current injector: kubectl rollout restart the Deployment"
	default:
		return fmt.Sprintf("exit %d (%s)", code, orNone(t.Reason)), "kubectl logs the Pod's " + contract.SeedContainerName + " container"
	}
}

// seedMemoryLimit is the seed container's memory limit in the Pod.
func seedMemoryLimit(ps corev1.PodSpec) string {
	for _, c := range ps.InitContainers {
		if c.Name == contract.SeedContainerName {
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				return q.String()
			}
		}
	}
	return "unset"
}

func waitingReason(st corev1.ContainerStatus) string {
	if st.State.Waiting == nil {
		return "no state reported"
	}
	return strings.TrimSpace(st.State.Waiting.Reason + " " + st.State.Waiting.Message)
}

// firstLine is the first line of a termination message, kept short.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
