package check

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
)

// TestCheck: on a healthy install every check passes and check exits 0;
// each failure provoked alone gives exactly its one ✗ line with the reason
// and the fix, and exit 1; once repaired, check passes again.
func TestCheck(t *testing.T) {
	cl := install(t)
	code, out, failed := check(t)
	if code != 0 || len(failed) > 0 {
		t.Fatalf("a healthy install: exit %d, failed %q\n%s", code, failed, out)
	}
	for _, want := range []string{
		" (Kubernetes v1.35.",
		"✓ caBundle of MutatingWebhookConfiguration opencode-injector webhook inject.opencode.angryninja.cloud: verifies the serving certificate for opencode-injector.opencode-system.svc",
		"✓ caBundle of ValidatingWebhookConfiguration opencode-injector webhook scale.opencode.angryninja.cloud: verifies the serving certificate",
		"✓ serving certificate (Secret opencode-system/" + cl.secretName + "): valid until",
		"✓ endpoints of Service opencode-system/opencode-injector port 443: 2 ready",
		"✓ Pod opencode-system/opencode-injector-6f7d9-a1b2c: ready",
		"✓ seed image: " + seedImage + " (the injector's own image, pinned by the digest Pod",
		"✓ the API server's call to the webhook (dry-run create of a labeled Deployment in opencode): the webhook injected it",
		"workspace opencode/opencode-flux",
		"✓ injected: seed image " + seedImage + "\n",
		"✓ record: annotation " + contract.AnnotationInjected + " agrees",
		"✓ scale guard: covers namespace opencode",
		"✓ claim opencode-flux: Bound to pvc-3f1c",
		"✓ Secret opencode-secret: holds OPENCODE_SERVER_PASSWORD",
		"✓ seed: Pod opencode-flux-5c6b8-k2j4x: last exit 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("a healthy install: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "correct horse") {
		t.Error("check printed the password")
	}

	t.Run("ended and terminating injector Pods", func(t *testing.T) {
		cl.leftoverPods(t)
		if code, out, failed := check(t); code != 0 {
			t.Errorf("an Evicted, a Succeeded and a Terminating Pod beside two ready replicas: exit %d, failed %q\n%s", code, failed, out)
		} else if !strings.Contains(out, "✓ Deployment opencode-system/opencode-injector: 2 of 2 replicas ready") {
			t.Errorf("no ready count against the Deployment's in\n%s", out)
		}
	})

	t.Run("a Deployment of the probe's old name in the probed namespace", func(t *testing.T) {
		// A user's own, unlabeled Deployment: the probe's dry run must
		// not meet it ("already exists").
		d := fixture(t)
		d.Name = "opencode-injector-check"
		delete(d.Labels, contract.LabelInject)
		create(t, d)
		t.Cleanup(func() { remove(t, d) })
		code, out, failed := check(t)
		want := "✓ the API server's call to the webhook (dry-run create of a labeled Deployment in opencode): the webhook injected it"
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, failed %q; want exit 0 and %q\n%s", code, failed, want, out)
		}
	})

	t.Run("a user who may not read the workspace's Secret", func(t *testing.T) {
		code, out, failed := checkAs(t, readerWithoutSecrets(t))
		want := "✗ Secret opencode-secret: check cannot read Secret opencode/opencode-secret: forbidden (needs get on secrets); fix: "
		if code != 1 || len(failed) != 1 || !strings.HasPrefix(failed[0], want) {
			t.Errorf("exit %d, failed %q; want one line %q\n%s", code, failed, want, out)
		}
	})

	for _, c := range cl.failures(t) {
		t.Run(c.name, func(t *testing.T) {
			restore := c.provoke(t)
			code, out, failed := check(t)
			want := append([]string{c.want}, c.alsoWant...)
			if code != 1 || len(failed) != len(want) {
				t.Errorf("exit %d, failed %q; want exit 1 and lines with %q\n%s", code, failed, want, out)
			}
			for _, w := range want {
				if !slices.ContainsFunc(failed, func(l string) bool { return strings.Contains(l, w) && strings.Contains(l, "; fix: ") }) {
					t.Errorf("no failed line with %q and a fix\n%s", w, out)
				}
			}
			restore()
			if code, out, failed := check(t); code != 0 {
				t.Fatalf("repaired: exit %d, failed %q\n%s", code, failed, out)
			}
		})
	}
}

type failure struct {
	name string
	// provoke breaks one thing and returns what repairs it.
	provoke func(t *testing.T) (restore func())
	want    string
	// alsoWant are the other lines the same cause fails (none: want is
	// the only one).
	alsoWant []string
}

func (cl *cluster) failures(t *testing.T) []failure {
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector"}}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector"}}
	serving := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cl.secretName, Namespace: injectorNamespace}}
	restoreServing := func() {
		update(t, serving, func(s *corev1.Secret) { s.Data = maps.Clone(cl.servingTLS) })
	}
	servingFor := func(notBefore, notAfter time.Time, dnsNames []string) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			crt, key := cl.issue(t, notBefore, notAfter, dnsNames)
			update(t, serving, func(s *corev1.Secret) { s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey] = crt, key })
			return restoreServing
		}
	}
	servingValid := func(notBefore, notAfter time.Time) func(t *testing.T) func() {
		return servingFor(notBefore, notAfter, serviceDNSNames)
	}
	endpoints := func(change func(*discoveryv1.EndpointSlice)) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			update(t, cl.slice, change)
			return func() {
				update(t, cl.slice, func(s *discoveryv1.EndpointSlice) { s.Endpoints, s.Ports = cl.endpoints, cl.endpointPorts })
			}
		}
	}
	seedExit := func(st corev1.ContainerStatus) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			setSeed(t, cl.workspacePo, st)
			return func() {
				setSeed(t, cl.workspacePo, corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}})
			}
		}
	}
	// withCABundle names ConfigMap git-ca in the workspace's ca-bundle
	// annotation (the webhook injects its volume) and creates it with
	// data, unless data is nil; restore takes both away.
	withCABundle := func(t *testing.T, data map[string]string) func() {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "git-ca", Namespace: workspaceNS}, Data: data}
		if data != nil {
			create(t, cm)
		}
		update(t, cl.workspace, func(d *appsv1.Deployment) { d.Annotations[contract.AnnotationCABundle] = cm.Name })
		return func() {
			update(t, cl.workspace, func(d *appsv1.Deployment) { delete(d.Annotations, contract.AnnotationCABundle) })
			if data != nil {
				remove(t, cm)
			}
		}
	}
	now := time.Now()
	return []failure{{
		name: "API server cannot reach the webhook",
		provoke: func(*testing.T) func() {
			// As a NetworkPolicy that leaves the API server out: the
			// injector runs and its Pods and endpoints look ready.
			cl.stopWebhook()
			return func() { cl.stopWebhook = serveAtService(t, cl.servingTLS) }
		},
		want: "✗ the API server's call to the webhook (dry-run create of a labeled Deployment in opencode): Internal error occurred: failed calling webhook \"inject.opencode.angryninja.cloud\"",
	}, {
		name: "API server skips the unreachable webhook (failurePolicy Ignore)",
		provoke: func(st *testing.T) func() {
			policy := func(p admissionregistrationv1.FailurePolicyType) func(*admissionregistrationv1.MutatingWebhookConfiguration) {
				return func(c *admissionregistrationv1.MutatingWebhookConfiguration) { c.Webhooks[0].FailurePolicy = &p }
			}
			update(st, mutating, policy(admissionregistrationv1.Ignore))
			cl.stopWebhook()
			return func() {
				cl.stopWebhook = serveAtService(t, cl.servingTLS) // lives as long as the whole test
				update(st, mutating, policy(admissionregistrationv1.Fail))
			}
		},
		want: "✗ the API server's call to the webhook (dry-run create of a labeled Deployment in opencode): the API server answered without the webhook's injection",
	}, {
		name: "missing caBundle",
		provoke: func(t *testing.T) func() {
			return swapCABundle(t, mutating, func(c *admissionregistrationv1.MutatingWebhookConfiguration) *[]byte {
				return &c.Webhooks[0].ClientConfig.CABundle
			}, nil)
		},
		want: "✗ caBundle of MutatingWebhookConfiguration opencode-injector webhook inject.opencode.angryninja.cloud: empty",
		// and so the API server refuses the injector's certificate
		alsoWant: []string{"✗ the API server's call to the webhook (dry-run create of a labeled Deployment in opencode): Internal error occurred: failed calling webhook \"inject.opencode.angryninja.cloud\": failed to call webhook: Post \"https://opencode-injector.opencode-system.svc:443/inject?timeout=5s\": tls: failed to verify certificate: x509: certificate signed by unknown authority; fix: the API server reaches the webhook but does not trust its certificate"},
	}, {
		name: "wrong caBundle",
		provoke: func(t *testing.T) func() {
			return swapCABundle(t, validating, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) *[]byte {
				return &c.Webhooks[0].ClientConfig.CABundle
			}, newCA(t, "another-ca").CertPEM)
		},
		want: "✗ caBundle of ValidatingWebhookConfiguration opencode-injector webhook scale.opencode.angryninja.cloud: does not verify the serving certificate",
	}, {
		name:    "expired certificate",
		provoke: servingValid(now.Add(-91*24*time.Hour), now.Add(-time.Hour)),
		want:    "✗ serving certificate (Secret opencode-system/" + cl.secretName + "): expired on",
	}, {
		name:     "certificate for another name",
		provoke:  servingFor(now.Add(-time.Hour), now.Add(90*24*time.Hour), []string{"opencode-injector.elsewhere.svc"}),
		want:     "✗ caBundle of MutatingWebhookConfiguration opencode-injector webhook inject.opencode.angryninja.cloud: does not verify the serving certificate for opencode-injector.opencode-system.svc: x509: certificate is valid for opencode-injector.elsewhere.svc",
		alsoWant: []string{"✗ caBundle of ValidatingWebhookConfiguration opencode-injector webhook scale.opencode.angryninja.cloud: does not verify the serving certificate for opencode-injector.opencode-system.svc: x509: certificate is valid for opencode-injector.elsewhere.svc"},
	}, {
		name: "endpoints not ready",
		provoke: endpoints(func(s *discoveryv1.EndpointSlice) {
			for i := range s.Endpoints {
				s.Endpoints[i].Conditions.Ready = ptr.To(false)
			}
		}),
		want: "✗ endpoints of Service opencode-system/opencode-injector port 443: no ready endpoint",
	}, {
		name: "endpoints on another port",
		provoke: endpoints(func(s *discoveryv1.EndpointSlice) {
			s.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](8080)}}
		}),
		want: "✗ endpoints of Service opencode-system/opencode-injector port 443: no ready endpoint",
	}, {
		name:    "certificate near expiry",
		provoke: servingValid(now.Add(-88*24*time.Hour), now.Add(48*time.Hour)),
		want:    "in 48h0m0s",
	}, {
		name: "no endpoints",
		provoke: func(t *testing.T) func() {
			if err := env.Client.Delete(ctx, cl.slice); err != nil {
				t.Fatal(err)
			}
			return func() {
				s := cl.slice.DeepCopy()
				s.ResourceVersion, s.UID = "", ""
				create(t, s)
			}
		},
		want: "✗ endpoints of Service opencode-system/opencode-injector port 443: no ready endpoint",
	}, {
		name: "injector replica not ready",
		provoke: func(t *testing.T) func() {
			p := cl.pods[1]
			setStatus(t, p, func(p *corev1.Pod) {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}}
			})
			return func() { setStatus(t, p, func(p *corev1.Pod) { p.Status = runningInjector(p, seedImage) }) }
		},
		want: "✗ Pod opencode-system/opencode-injector-6f7d9-d3e4f: not ready: ContainersNotReady",
	}, {
		name: "injector replica missing",
		provoke: func(t *testing.T) func() {
			p := cl.pods[1]
			remove(t, p)
			return func() {
				again := p.DeepCopy()
				again.ResourceVersion, again.UID = "", ""
				create(t, again)
				setStatus(t, again, func(p *corev1.Pod) { p.Status = runningInjector(p, injection.ImageRepository+"@"+digest) })
			}
		},
		want: "✗ Deployment opencode-system/opencode-injector: 1 of 2 replicas ready",
	}, {
		name: "seed image without a digest",
		provoke: func(t *testing.T) func() {
			p := cl.pods[0]
			setStatus(t, p, func(p *corev1.Pod) { p.Status = runningInjector(p, digest) })
			return func() { setStatus(t, p, func(p *corev1.Pod) { p.Status = runningInjector(p, seedImage) }) }
		},
		want: "✗ seed image of Pod opencode-injector-6f7d9-a1b2c: imageID \"" + digest + "\" carries no registry digest",
	}, {
		name: "workspace in an excluded namespace",
		provoke: func(t *testing.T) func() {
			d := fixture(t)
			d.Namespace = "kube-system"
			create(t, d) // the webhook's namespaceSelector leaves kube-system out: not called
			return func() { remove(t, d) }
		},
		want: "✗ injected: not injected: the webhook's namespaceSelector excludes namespace kube-system",
	}, {
		name: "workspace created while the webhook was away",
		provoke: func(t *testing.T) func() {
			d := fixture(t)
			d.Name = "opencode-late"
			withoutWebhook(t, func() error {
				created := d.DeepCopy()
				if err := env.Client.Create(ctx, created); err != nil {
					return err
				}
				// A create that still met the webhook is injected: not
				// the workspace this case needs.
				if _, injected := created.Annotations[contract.AnnotationInjected]; injected {
					if err := env.Client.Delete(ctx, created); err != nil {
						return err
					}
					return fmt.Errorf("the webhook injected %s", created.Name)
				}
				return nil
			})
			return func() { remove(t, d) }
		},
		want: "✗ injected: not injected: it was created or last changed while the webhook did not see it",
	}, {
		name: "edited record",
		provoke: func(t *testing.T) func() {
			record := cl.workspace.Annotations[contract.AnnotationInjected]
			setRecord := func(v string) func() error {
				return func() error {
					d := &appsv1.Deployment{}
					if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cl.workspace), d); err != nil {
						return err
					}
					d.Annotations[contract.AnnotationInjected] = v
					if err := env.Client.Update(ctx, d); err != nil {
						return err
					}
					// A write that still met the webhook has its record
					// stamped again: not the write this case needs.
					if got := d.Annotations[contract.AnnotationInjected]; got != v {
						return fmt.Errorf("the webhook rewrote the record to %s", got)
					}
					return nil
				}
			}
			withoutWebhook(t, setRecord(strings.Replace(record, `"container":"app"`, `"container":"ghost"`, 1)))
			return func() { withoutWebhook(t, setRecord(record)) }
		},
		want: `✗ record: annotation opencode.angryninja.cloud/injected is malformed or was edited by hand (container "ghost" is not in the pod template)`,
	}, {
		name: "namespace outside the scale guard",
		provoke: func(t *testing.T) func() {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: workspaceNS}}
			update(t, ns, func(ns *corev1.Namespace) { delete(ns.Labels, contract.LabelWorkspaces) })
			return func() { update(t, ns, func(ns *corev1.Namespace) { ns.Labels[contract.LabelWorkspaces] = "true" }) }
		},
		want: "✗ scale guard: namespace opencode is not labeled opencode.angryninja.cloud/workspaces=true",
	}, {
		name: "pending claim",
		provoke: func(t *testing.T) func() {
			setStatus(t, cl.claim, func(c *corev1.PersistentVolumeClaim) { c.Status.Phase = corev1.ClaimPending })
			return func() {
				setStatus(t, cl.claim, func(c *corev1.PersistentVolumeClaim) { c.Status.Phase = corev1.ClaimBound })
			}
		},
		want: "✗ claim opencode-flux: Pending, not Bound",
	}, {
		name: "secret without the password key",
		provoke: func(t *testing.T) func() {
			update(t, cl.password, func(s *corev1.Secret) { s.Data = map[string][]byte{contract.SecretKeyToken: []byte("t")} })
			return func() {
				update(t, cl.password, func(s *corev1.Secret) {
					s.Data = map[string][]byte{contract.SecretKeyPassword: []byte("correct horse")}
				})
			}
		},
		want: "✗ Secret opencode-secret: holds no key OPENCODE_SERVER_PASSWORD",
	}, {
		name: "seed exit 7",
		provoke: seedExit(corev1.ContainerStatus{
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 7, Reason: "Error",
				Message: "/data/workspace/github.com/angryninja/k8s-cluster holds a repository of another remote\nmore"}},
		}),
		want: "exit 7: the workspace path holds something else, or a damaged clone; the seed never deletes it (it may hold unpushed work) (the seed said: /data/workspace/github.com/angryninja/k8s-cluster holds a repository of another remote)",
	}, {
		name:    "CA ConfigMap missing",
		provoke: func(t *testing.T) func() { return withCABundle(t, nil) },
		want:    "✗ ConfigMap git-ca (annotation opencode.angryninja.cloud/ca-bundle): not found: the Pod cannot start without it; fix: create ConfigMap git-ca in opencode with the git host's CA certificates (PEM) in key ca.crt",
	}, {
		name: "CA ConfigMap without PEM, seed exit 2",
		provoke: func(t *testing.T) func() {
			restoreCA := withCABundle(t, map[string]string{contract.CABundleKey: "not a certificate"})
			restoreSeed := seedExit(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error",
				Message: "CA bundle /var/run/opencode-ca/ca.crt holds no PEM certificate; put the git host's CA certificates (PEM) in key ca.crt"}}})(t)
			return func() { restoreSeed(); restoreCA() }
		},
		want: "✗ ConfigMap git-ca (annotation opencode.angryninja.cloud/ca-bundle): key ca.crt: no PEM certificate: the seed exits 2; fix: create ConfigMap git-ca",
		alsoWant: []string{"exit 2: the seed could not read the CA bundle (the seed said: CA bundle /var/run/opencode-ca/ca.crt holds no PEM certificate; put the git host's CA certificates (PEM) in key ca.crt); " +
			"fix: put the git host's CA certificates (PEM) in key ca.crt of ConfigMap git-ca (annotation opencode.angryninja.cloud/ca-bundle), then delete the Pod"},
	}, {
		name: "seed exit 5, untrusted certificate",
		provoke: seedExit(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 5, Reason: "Error",
			Message: "clone https://git.home.arpa/k8s: the host's certificate is signed by a CA the seed does not trust"}}}),
		want: "exit 5: network, DNS, TLS or timeout (the seed said: clone https://git.home.arpa/k8s: the host's certificate is signed by a CA the seed does not trust); " +
			"fix: check the workspace's egress (its NetworkPolicy) and DNS to the git host; if the host's certificate is untrusted (a self-hosted host), set annotation opencode.angryninja.cloud/ca-bundle to a ConfigMap whose key ca.crt holds its CA",
	}, {
		name:    "seed exit 8",
		provoke: seedExit(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 8, Reason: "Error"}}}),
		want:    "exit 8: an object of the repository needs more memory than the limit 256Mi allows; the seed stopped before running out; fix: raise annotation opencode.angryninja.cloud/seed-memory",
	}, {
		name:    "seed OOMKilled",
		provoke: seedExit(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}),
		want:    "OOMKilled: the kernel killed the seed at its memory limit 256Mi",
	}}
}

// swapCABundle sets the caBundle that field points at in cfg to pem and
// returns what puts the old one back.
func swapCABundle[T client.Object](t *testing.T, cfg T, field func(T) *[]byte, pem []byte) (restore func()) {
	var saved []byte
	update(t, cfg, func(c T) { saved, *field(c) = *field(c), pem })
	return func() { update(t, cfg, func(c T) { *field(c) = saved }) }
}

// withoutWebhook makes write while the mutating webhook configuration is
// gone (as before the injector was installed, or while it was uninstalled),
// then registers it again as it was.
func withoutWebhook(t *testing.T, write func() error) {
	t.Helper()
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "opencode-injector"}, cfg); err != nil {
		t.Fatal(err)
	}
	remove(t, cfg)
	// The API server's view of webhook configurations follows a watch: a
	// write may still meet the webhook for a moment, so write retries
	// until what it wrote is what is stored.
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = write(); err == nil {
			break
		}
	}
	cfg.ResourceVersion, cfg.UID, cfg.CreationTimestamp, cfg.ManagedFields = "", "", metav1.Time{}, nil
	create(t, cfg)
	if err != nil {
		t.Fatalf("write without the webhook: %v", err)
	}
}

func remove(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Delete(ctx, obj); err != nil {
		t.Fatalf("delete %T %s: %v", obj, obj.GetName(), err)
	}
}

// leftoverPods adds, beside the ready replicas, the Pods a cluster keeps
// that no longer count: one Evicted (phase Failed), one Succeeded and one
// Terminating (deletionTimestamp set, held by a finalizer). They go when
// t ends.
func (cl *cluster) leftoverPods(t *testing.T) {
	t.Helper()
	pod := func(name string) *corev1.Pod {
		p := cl.pods[0].DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: injectorNamespace, Labels: p.Labels}
		create(t, p)
		t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
		return p
	}
	ended := func(phase corev1.PodPhase, reason string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{Phase: phase, Reason: reason,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "PodCompleted"}}}
		}
	}
	setStatus(t, pod("opencode-injector-6f7d9-evict"), ended(corev1.PodFailed, "Evicted"))
	setStatus(t, pod("opencode-injector-6f7d9-done0"), ended(corev1.PodSucceeded, ""))
	terminating := pod("opencode-injector-6f7d9-term0")
	update(t, terminating, func(p *corev1.Pod) { p.Finalizers = []string{"opencode.angryninja.cloud/test"} })
	remove(t, terminating)
	t.Cleanup(func() { update(t, terminating, func(p *corev1.Pod) { p.Finalizers = nil }) })
}

// readerWithoutSecrets is the kubeconfig of a user who may read what check
// reads, and dry-run create Deployments, but get Secrets only in the
// injector's namespace.
func readerWithoutSecrets(t *testing.T) string {
	t.Helper()
	read := []string{"get", "list", "watch"}
	create(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "check-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "pods", "services", "configmaps", "persistentvolumeclaims"}, Verbs: read},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: append(read, "create")},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}, Verbs: read},
	}})
	create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "check-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "check-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "reader"}}})
	create(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "check-reader", Namespace: injectorNamespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: read}}})
	create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "check-reader", Namespace: injectorNamespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "check-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "reader"}}})
	user, err := env.Env.AddUser(envtest.User{Name: "reader"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	config, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, config, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
