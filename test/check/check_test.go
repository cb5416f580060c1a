package check

import (
	"maps"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/angryninja/opencode-injector/contract"
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

	for _, c := range cl.failures(t) {
		t.Run(c.name, func(t *testing.T) {
			restore := c.provoke(t)
			code, out, failed := check(t)
			if code != 1 || len(failed) != 1 || !strings.Contains(failed[0], c.want) || !strings.Contains(failed[0], "; fix: ") {
				t.Errorf("exit %d, failed %q; want exit 1 and one line with %q and a fix\n%s", code, failed, c.want, out)
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
}

func (cl *cluster) failures(t *testing.T) []failure {
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector"}}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector"}}
	serving := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cl.secretName, Namespace: injectorNamespace}}
	restoreServing := func() {
		update(t, serving, func(s *corev1.Secret) { s.Data = maps.Clone(cl.servingTLS) })
	}
	servingValid := func(notBefore, notAfter time.Time) func(t *testing.T) func() {
		return func(t *testing.T) func() {
			crt, key := cl.issue(t, notBefore, notAfter)
			update(t, serving, func(s *corev1.Secret) { s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey] = crt, key })
			return restoreServing
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
	now := time.Now()
	return []failure{{
		name: "missing caBundle",
		provoke: func(t *testing.T) func() {
			return swapCABundle(t, mutating, func(c *admissionregistrationv1.MutatingWebhookConfiguration) *[]byte {
				return &c.Webhooks[0].ClientConfig.CABundle
			}, nil)
		},
		want: "✗ caBundle of MutatingWebhookConfiguration opencode-injector webhook inject.opencode.angryninja.cloud: empty",
	}, {
		name: "wrong caBundle",
		provoke: func(t *testing.T) func() {
			_, _, other := newCA(t, "another-ca")
			return swapCABundle(t, validating, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) *[]byte {
				return &c.Webhooks[0].ClientConfig.CABundle
			}, other)
		},
		want: "✗ caBundle of ValidatingWebhookConfiguration opencode-injector webhook scale.opencode.angryninja.cloud: does not verify the serving certificate",
	}, {
		name:    "expired certificate",
		provoke: servingValid(now.Add(-91*24*time.Hour), now.Add(-time.Hour)),
		want:    "✗ serving certificate (Secret opencode-system/" + cl.secretName + "): expired on",
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
			withoutWebhook(t, func() error { return env.Client.Create(ctx, d.DeepCopy()) })
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
					return env.Client.Update(ctx, d)
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
	// write may still meet the webhook (unreachable here) for a moment.
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
