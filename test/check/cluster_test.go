package check

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	"github.com/angryninja/opencode-injector/test/testenv"
)

const (
	injectorNamespace = "opencode-system"
	workspaceNS       = "opencode"
)

// cluster is what the test installed: the injector's objects as deploy/
// renders them (its Pods and EndpointSlice as the ReplicaSet and
// EndpointSlice controllers would write them: envtest runs no controllers)
// and one workspace the real webhook injected.
type cluster struct {
	ca         testenv.KeyPair
	servingTLS map[string][]byte // the Secret's data
	secretName string
	pods       []*corev1.Pod
	slice      *discoveryv1.EndpointSlice
	// endpoints and endpointPorts are the slice's as installed.
	endpoints     []discoveryv1.Endpoint
	endpointPorts []discoveryv1.EndpointPort
	workspace     *appsv1.Deployment
	workspacePo   *corev1.Pod
	claim         *corev1.PersistentVolumeClaim
	password      *corev1.Secret
	// stopWebhook stops the injector the API server calls at the Service.
	stopWebhook func()
}

// install creates the workspace first, while the webhook is still served
// at the URL testenv registered, then the injector's objects, and points
// both webhook configurations at the injector's Service as deploy/ does,
// with the caBundle cert-manager's CA injector would write.
func install(t *testing.T) *cluster {
	t.Helper()
	cl := &cluster{}
	cl.installWorkspace(t)
	docs, err := testenv.Render(filepath.Join(root, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.Apply(ctx, env.Client, "check-test", docs, "Namespace", "ServiceAccount", "Service", "Deployment"); err != nil {
		t.Fatal(err)
	}
	cl.installPods(t, docs)
	cl.slice = &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "opencode-injector-x7k2p", Namespace: injectorNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: "opencode-injector"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.42.0.11"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.42.1.12"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: ptr.To[int32](9443)}},
	}
	cl.endpoints, cl.endpointPorts = cl.slice.DeepCopy().Endpoints, cl.slice.DeepCopy().Ports
	create(t, cl.slice)

	cl.ca = newCA(t, "opencode-injector-ca")
	caPEM := cl.ca.CertPEM
	now := time.Now()
	crt, key := cl.issue(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), serviceDNSNames)
	cl.servingTLS = map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key, "ca.crt": caPEM}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cl.secretName, Namespace: injectorNamespace},
		Type: corev1.SecretTypeTLS, Data: cl.servingTLS})

	mutating, err := testenv.WebhookConfiguration(root)
	if err != nil {
		t.Fatal(err)
	}
	validating, err := testenv.ValidatingWebhookConfiguration(root)
	if err != nil {
		t.Fatal(err)
	}
	update(t, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: mutating.Name}},
		func(cfg *admissionregistrationv1.MutatingWebhookConfiguration) {
			cfg.Webhooks[0].ClientConfig = mutating.Webhooks[0].ClientConfig
			cfg.Webhooks[0].ClientConfig.CABundle = caPEM
		})
	update(t, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: validating.Name}},
		func(cfg *admissionregistrationv1.ValidatingWebhookConfiguration) {
			cfg.Webhooks[0].ClientConfig = validating.Webhooks[0].ClientConfig
			cfg.Webhooks[0].ClientConfig.CABundle = caPEM
		})
	cl.stopWebhook = serveAtService(t, cl.servingTLS)
	return cl
}

// installWorkspace creates the flux fixture through the API (the webhook
// injects it), its bound claim, its Secret and its Pod, whose seed exited 0.
func (cl *cluster) installWorkspace(t *testing.T) {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: workspaceNS, Labels: map[string]string{contract.LabelWorkspaces: "true"}}})
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: workspaceNS}})
	d := fixture(t)
	create(t, d)
	if !injection.IsInjected(d) || d.Annotations[contract.AnnotationInjected] == "" {
		t.Fatal("the webhook did not inject the workspace")
	}
	cl.workspace = d
	ps := d.Spec.Template.Spec
	cl.claim = &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: contract.ClaimName(d.Annotations, d.Name), Namespace: workspaceNS},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
			VolumeName:  "pvc-3f1c",
		},
	}
	create(t, cl.claim)
	setStatus(t, cl.claim, func(c *corev1.PersistentVolumeClaim) { c.Status.Phase = corev1.ClaimBound })
	cl.password = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opencode-secret", Namespace: workspaceNS},
		Data: map[string][]byte{contract.SecretKeyPassword: []byte("correct horse")}}
	create(t, cl.password)
	cl.workspacePo = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-5c6b8-k2j4x", Namespace: workspaceNS, Labels: d.Spec.Template.Labels}, Spec: ps}
	create(t, cl.workspacePo)
	setSeed(t, cl.workspacePo, corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}})
}

// installPods creates two injector Pods from deploy/'s Deployment, ready,
// with the image digest the kubelet would report.
func (cl *cluster) installPods(t *testing.T, docs [][]byte) {
	t.Helper()
	var d appsv1.Deployment
	for _, doc := range docs {
		if err := yaml.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		if d.Kind == "Deployment" {
			break
		}
	}
	for _, name := range []string{"opencode-injector-6f7d9-a1b2c", "opencode-injector-6f7d9-d3e4f"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: injectorNamespace, Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
		create(t, p)
		setStatus(t, p, func(p *corev1.Pod) { p.Status = runningInjector(p, injection.ImageRepository+"@"+digest) })
		cl.pods = append(cl.pods, p)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			cl.secretName = v.Secret.SecretName
		}
	}
}

// runningInjector is the status the kubelet writes for a ready injector.
func runningInjector(p *corev1.Pod, imageID string) corev1.PodStatus {
	c := p.Spec.Containers[0]
	return corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: c.Name, Image: c.Image, ImageID: imageID, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}},
	}
}

// setSeed writes the seed init container's status into the workspace Pod.
func setSeed(t *testing.T, p *corev1.Pod, st corev1.ContainerStatus) {
	t.Helper()
	st.Name = contract.SeedContainerName
	st.Image = p.Spec.InitContainers[0].Image
	setStatus(t, p, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{st}
	})
}

func fixture(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return injectiontest.ReadDeployment(t, injectiontest.FluxFixture)
}

// serviceDNSNames are the names cert-manager's Certificate in deploy/ asks
// for: the injector's Service's.
var serviceDNSNames = []string{"opencode-injector.opencode-system.svc", "opencode-injector.opencode-system.svc.cluster.local"}

// issue signs a serving certificate for dnsNames with the test's CA, valid
// from notBefore to notAfter.
func (cl *cluster) issue(t *testing.T, notBefore, notAfter time.Time, dnsNames []string) (crtPEM, keyPEM []byte) {
	t.Helper()
	p := testenv.Sign(t, x509.Certificate{
		DNSNames:  dnsNames,
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &cl.ca)
	return p.CertPEM, p.KeyPEM
}

// newCA is a self-signed CA, as deploy/'s root Issuer makes.
func newCA(t *testing.T, name string) testenv.KeyPair {
	t.Helper()
	return testenv.Sign(t, x509.Certificate{
		Subject:   pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// update reads obj, changes it and writes it back.
func update[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	write(t, obj, change, func(obj client.Object) error { return env.Client.Update(ctx, obj) })
}

// setStatus reads obj, changes it and writes its status subresource, as
// the kubelet or a controller would.
func setStatus[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	write(t, obj, change, func(obj client.Object) error { return env.Client.Status().Update(ctx, obj) })
}

func write[T client.Object](t *testing.T, obj T, change func(T), put func(client.Object) error) {
	t.Helper()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	change(obj)
	if err := put(obj); err != nil {
		t.Fatalf("write %T %s: %v", obj, obj.GetName(), err)
	}
}
