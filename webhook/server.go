package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/provision"
)

// Path is where the API server sends admission reviews; deploy/ names it in
// the MutatingWebhookConfiguration.
const Path = "/inject"

// LeaderElectionID is the Lease the replicas elect the claim provisioner's
// leader by, in the injector's namespace.
const LeaderElectionID = "opencode-injector.angryninja.cloud"

var mutations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "opencode_injector_mutations_total",
	Help: "Admission reviews of labeled Deployments, by outcome (injected, unchanged, un-injected, denied).",
}, []string{"outcome"})

func init() {
	metrics.Registry.MustRegister(mutations)
	for _, o := range []string{OutcomeInjected, OutcomeUnchanged, OutcomeUninjected, OutcomeDenied, OutcomeError} {
		mutations.WithLabelValues(o)
	}
}

// ServerOptions are the flags of `serve` that are not injection settings.
type ServerOptions struct {
	Host               string // empty: all interfaces
	Port               int
	CertDir            string // holds tls.crt and tls.key, reloaded when they change
	MetricsBindAddress string // "0" disables
	// MetricsSecure serves /metrics over HTTPS (the certificate in CertDir)
	// to clients whose token the API server authenticates and authorizes
	// for GET /metrics, as kubebuilder projects do.
	MetricsSecure           bool
	HealthProbeBindAddress  string // "0" disables
	LeaderElect             bool
	LeaderElectionNamespace string
	// LeaderElectionIdentity names this replica in the Lease and in the
	// Events of the claims it creates (default: the host name, which is
	// the Pod's name, and a random suffix).
	LeaderElectionIdentity string
	// Self is the injector's own container. When Settings.SeedImage is
	// empty, the seed image is that container's image pinned by the digest
	// the kubelet reports; until it is known the webhook is not ready and
	// answers every review with an error (failurePolicy Fail: nothing is
	// injected with a guessed image).
	Self Self
	// SelfPoll is how often the Pod is read until its image is known
	// (default 2s).
	SelfPoll time.Duration
}

// Self names a container of a Pod: the downward API's POD_NAMESPACE and
// POD_NAME, and the container's name.
type Self struct {
	Namespace, Pod, Container string
}

// NewManager builds the controller-runtime manager that serves the webhook,
// health probes and metrics.
func NewManager(cfg *rest.Config, s Settings, o ServerOptions) (manager.Manager, error) {
	followSelf := s.SeedImage == ""
	if err := s.Validate(); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	identity, lock, leaderEvents, err := leaderLock(cfg, o)
	if err != nil {
		return nil, err
	}
	metricsOptions := metricsserver.Options{BindAddress: o.MetricsBindAddress}
	if o.MetricsSecure {
		metricsOptions.SecureServing = true
		metricsOptions.CertDir = o.CertDir
		metricsOptions.FilterProvider = metricsAuth
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                              scheme,
		Metrics:                             metricsOptions,
		HealthProbeBindAddress:              o.HealthProbeBindAddress,
		LeaderElection:                      o.LeaderElect,
		LeaderElectionID:                    LeaderElectionID,
		LeaderElectionNamespace:             o.LeaderElectionNamespace,
		LeaderElectionResourceLockInterface: lock,
		LeaderElectionReleaseOnCancel:       true, // the process exits right after
		// The claim provisioner's cache: labeled Deployments and the
		// claims the injector created, nothing else.
		Cache:         cache.Options{ByObject: provision.CacheOptions()},
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}),
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if leaderEvents != nil {
		leaderEvents.set(mgr.GetEventRecorder("opencode-injector-leader-election"))
	}
	// Creates missing workspace claims; on the leader only.
	if err := provision.Add(mgr, identity); err != nil {
		return nil, fmt.Errorf("add the claim provisioner: %w", err)
	}
	srv := mgr.GetWebhookServer()
	decoder := admission.NewDecoder(scheme)
	gate := &seedImageGate{wayOut: &Handler{Settings: s, Decoder: decoder}}
	if followSelf {
		gate.setError(errors.New("the seed image is not known yet"))
		if err := mgr.Add(&selfImageResolver{reader: mgr.GetAPIReader(), self: o.Self, poll: o.SelfPoll, found: func(image string) {
			s := s
			s.SeedImage = image
			gate.set(&Handler{Settings: s, Decoder: decoder, Claims: mgr.GetAPIReader()})
		}, failed: gate.setError}); err != nil {
			return nil, err
		}
	} else {
		gate.set(&Handler{Settings: s, Decoder: decoder, Claims: mgr.GetAPIReader()})
	}
	srv.Register(Path, &admission.Webhook{Handler: gate})
	srv.Register(ScalePath, &admission.Webhook{Handler: &ScaleGuard{Deployments: mgr.GetClient(), Live: mgr.GetAPIReader()}})
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("seed-image", gate.ready); err != nil {
		return nil, err
	}
	return mgr, nil
}

// seedImageGate answers admission reviews with the Handler once the seed
// image is known, and with an error before, except for a way out: removing
// the label and updating a Deployment being deleted need no seed image and
// always pass.
type seedImageGate struct {
	h      atomic.Pointer[Handler]
	wayOut *Handler // Settings without a seed image, for the ways out only
	mu     sync.Mutex
	err    error
}

func (g *seedImageGate) set(h *Handler) { g.h.Store(h) }

func (g *seedImageGate) setError(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
}

// SeedImage is the seed image the webhook injects; empty until known.
func (g *seedImageGate) SeedImage() string {
	if h := g.h.Load(); h != nil {
		return h.Settings.SeedImage
	}
	return ""
}

func (g *seedImageGate) ready(*http.Request) error {
	if g.h.Load() != nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return fmt.Errorf("no seed image: %w", g.err)
}

func (g *seedImageGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	if h := g.h.Load(); h != nil {
		return h.Handle(ctx, req)
	}
	// Inject refuses only what would need the seed image; say why it is
	// not known.
	resp := g.wayOut.Handle(ctx, req)
	if resp.Result != nil && resp.Result.Code == http.StatusServiceUnavailable {
		resp.Result.Message += ": " + g.ready(nil).Error()
	}
	return resp
}

// selfImageResolver reads the injector's own Pod until the kubelet reports
// its container's image, then calls found once. It runs on every replica,
// leader or not.
type selfImageResolver struct {
	reader client.Reader
	self   Self
	poll   time.Duration
	found  func(string)
	failed func(error)
}

func (r *selfImageResolver) NeedLeaderElection() bool { return false }

func (r *selfImageResolver) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("seed-image")
	if r.self.Namespace == "" || r.self.Pod == "" {
		err := errors.New("set --seed-image, or POD_NAMESPACE and POD_NAME (downward API) so the injector can read its own image")
		r.failed(err)
		log.Error(err, "the webhook stays not ready")
		return nil // not ready, but serving probes and metrics
	}
	poll := r.poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	last := ""
	for {
		image, err := OwnImage(ctx, r.reader, r.self)
		if err == nil {
			log.Info("the seed image follows the injector's own image", "seedImage", image)
			r.found(image)
			return nil
		}
		r.failed(err)
		if err.Error() != last {
			log.Info("waiting for the injector's own image", "reason", err.Error())
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// OwnImage reads Pod self.Namespace/self.Pod and returns the image of its
// container self.Container (empty: the only container), pinned by the
// digest the kubelet reports in the container's status (imageID). It needs
// only `get` on that Pod.
func OwnImage(ctx context.Context, r client.Reader, self Self) (string, error) {
	var pod corev1.Pod
	if err := r.Get(ctx, types.NamespacedName{Namespace: self.Namespace, Name: self.Pod}, &pod); err != nil {
		return "", fmt.Errorf("read own Pod %s/%s: %w", self.Namespace, self.Pod, err)
	}
	name := self.Container
	if name == "" {
		if len(pod.Spec.Containers) != 1 {
			return "", fmt.Errorf("Pod %s/%s has %d containers: name the injector's", self.Namespace, self.Pod, len(pod.Spec.Containers))
		}
		name = pod.Spec.Containers[0].Name
	}
	var spec string
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			spec = c.Image
		}
	}
	if spec == "" {
		return "", fmt.Errorf("Pod %s/%s has no container %q", self.Namespace, self.Pod, name)
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name == name && st.ImageID != "" {
			return PinnedImage(spec, st.ImageID)
		}
	}
	return "", fmt.Errorf("the kubelet has not reported the image of container %q of Pod %s/%s yet", name, self.Namespace, self.Pod)
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// PinnedImage is the repository of spec (the image the Pod asked for, as
// an overlay's `images:` set it) at the registry digest in imageID (the
// kubelet's containerStatuses[].imageID, "repo@sha256:…").
func PinnedImage(spec, imageID string) (string, error) {
	id := strings.TrimPrefix(imageID, "docker-pullable://")
	at := strings.LastIndex(id, "@")
	if at < 0 || !digestRE.MatchString(id[at+1:]) {
		return "", fmt.Errorf("imageID %q carries no registry digest (an image loaded onto the node rather than pulled?): set --seed-image", imageID)
	}
	repo := spec
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo + "@" + id[at+1:], nil
}
