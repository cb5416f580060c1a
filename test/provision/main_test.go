// Package provisione2e runs the claim provisioner and the webhook on a real
// kube-apiserver and etcd (envtest), as the injector's ServiceAccount with
// exactly deploy/rbac.yaml's rights, one or two injector managers at a time
// with leader election on.
package provisione2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/manifest"
	"github.com/angryninja/opencode-injector/test/testenv"
)

const (
	injectorNamespace = "opencode-system"
	injectorUser      = "system:serviceaccount:opencode-system:opencode-injector"
)

var (
	ctx      = context.Background()
	root     string
	env      *envtest.Environment
	cfg      *rest.Config
	admin    client.Client
	settings = injection.DefaultSettings(injection.ImageRepository + ":v0.0.0-provision")
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if root, err = testenv.Root(); err != nil {
		return 0, err
	}
	assets, err := testenv.Assets(root)
	if err != nil {
		return 0, err
	}
	wh, err := testenv.WebhookConfiguration(root)
	if err != nil {
		return 0, err
	}
	env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{wh}},
	}
	if cfg, err = env.Start(); err != nil {
		return 0, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	defer func() { _ = env.Stop() }()
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		return 0, err
	}
	// The injector's namespace, ServiceAccount and RBAC, as deploy/ renders
	// them.
	docs, err := testenv.Render(root + "/deploy")
	if err != nil {
		return 0, err
	}
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: injectorNamespace}}); err != nil {
		return 0, err
	}
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return 0, err
		}
		switch u.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			if err := admin.Create(ctx, u); err != nil {
				return 0, fmt.Errorf("create %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
	return m.Run(), nil
}

// asInjector is a rest config acting as the injector's ServiceAccount.
func asInjector() *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: injectorUser}
	return c
}

// injector is one running injector manager (one replica).
type injector struct {
	identity string
	port     int
	stop     func()
	stopped  bool
}

// startInjector runs app.NewManager as `serve --leader-elect` does, as
// the injector's ServiceAccount, serving the webhook on port (0: the port
// the API server calls).
func startInjector(t *testing.T, identity string, port int) *injector {
	t.Helper()
	wio := env.WebhookInstallOptions
	if port == 0 {
		port = wio.LocalServingPort
	}
	mgr, err := app.NewManager(asInjector(), settings, app.ServerOptions{
		Host: wio.LocalServingHost, Port: port, CertDir: wio.LocalServingCertDir,
		MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		LeaderElect: true, LeaderElectionNamespace: injectorNamespace, LeaderElectionIdentity: identity,
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	inj := &injector{identity: identity, port: port}
	var once sync.Once
	inj.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("injector %s: %v", identity, err)
			}
			inj.stopped = true
		})
	}
	t.Cleanup(inj.stop)
	addr := net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(port))
	eventually(t, "the webhook of "+identity+" serving on "+addr, func() bool {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness only
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	})
	return inj
}

// leaseHolder is the identity that holds the injector's Lease now.
func leaseHolder(t *testing.T) string {
	t.Helper()
	var l struct {
		Spec struct {
			HolderIdentity *string `json:"holderIdentity"`
		} `json:"spec"`
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("coordination.k8s.io/v1")
	u.SetKind("Lease")
	if err := admin.Get(ctx, client.ObjectKey{Namespace: injectorNamespace, Name: app.LeaderElectionID}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return ""
		}
		t.Fatal(err)
	}
	b, _ := yaml.Marshal(u.Object)
	if err := yaml.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// namespace creates a fresh namespace for one test, labeled for
// workspaces (the admin's consent to claims there).
func namespace(t *testing.T) string {
	t.Helper()
	return namespaceLabeled(t, map[string]string{contract.LabelWorkspaces: contract.LabelWorkspacesEnabled})
}

// namespaceLabeled creates a fresh namespace with the labels.
func namespaceLabeled(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "provision-", Labels: labels}}
	if err := admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// workspace is the flux fixture's Deployment named name in ns, with the
// given extra annotations.
func workspace(t *testing.T, ns, name string, annotations map[string]string) *appsv1.Deployment {
	t.Helper()
	b, err := os.ReadFile(root + "/test/fixtures/app-template/flux.rendered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := manifest.FirstDeployment(b)
	if err != nil {
		t.Fatal(err)
	}
	d.Namespace, d.Name = ns, name
	for k, v := range annotations {
		d.Annotations[k] = v
	}
	return d
}

// claim waits for the claim ns/name to exist and returns it.
func claim(t *testing.T, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	eventually(t, "claim "+ns+"/"+name, func() bool {
		return admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pvc) == nil
	})
	return pvc
}

func claimExists(t *testing.T, ns, name string) bool {
	t.Helper()
	err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.PersistentVolumeClaim{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// events are the events.k8s.io Events about the Deployment ns/name with
// the reason.
func events(t *testing.T, ns, name, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Deployment" && e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event with the reason about the Deployment.
func waitEvent(t *testing.T, ns, name, reason string) eventsv1.Event {
	t.Helper()
	var got []eventsv1.Event
	eventually(t, reason+" Event on Deployment "+ns+"/"+name, func() bool {
		got = events(t, ns, name, reason)
		return len(got) > 0
	})
	return got[0]
}

func warningClient(t *testing.T) (client.Client, *testenv.Warnings) {
	t.Helper()
	return testenv.WarningClient(t, cfg)
}

// pointWebhookAt makes the API server call the webhook on port.
func pointWebhookAt(t *testing.T, port int) {
	t.Helper()
	var cfgs admissionregistrationv1.MutatingWebhookConfigurationList
	if err := admin.List(ctx, &cfgs); err != nil {
		t.Fatal(err)
	}
	for i := range cfgs.Items {
		c := &cfgs.Items[i]
		for j := range c.Webhooks {
			u := c.Webhooks[j].ClientConfig.URL
			if u == nil {
				continue
			}
			parsed, err := url.Parse(*u)
			if err != nil {
				t.Fatal(err)
			}
			parsed.Host = net.JoinHostPort(parsed.Hostname(), strconv.Itoa(port))
			c.Webhooks[j].ClientConfig.URL = ptr.To(parsed.String())
		}
		if err := admin.Update(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}
