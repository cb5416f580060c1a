package app

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
