package app

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// leaderRenewDeadline is controller-runtime's default; the Lease client's
// timeout is half of it.
const leaderRenewDeadline = 10 * time.Second

// leaderLock is this replica's identity and, with --leader-elect, the
// Lease lock it elects the claim provisioner's leader by. The lock is built
// here rather than by controller-runtime so that the identity is known to
// the provisioner (its Events name the replica that created a claim). The
// lock's Events go through the manager's recorder once set.
func leaderLock(cfg *rest.Config, o ServerOptions) (string, resourcelock.Interface, *deferredRecorder, error) {
	identity := o.LeaderElectionIdentity
	if identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", nil, nil, fmt.Errorf("leader election identity: %w", err)
		}
		identity = host + "_" + string(uuid.NewUUID())
	}
	if !o.LeaderElect {
		return identity, nil, nil, nil
	}
	if o.LeaderElectionNamespace == "" {
		return "", nil, nil, errors.New("leader election needs the injector's namespace: set POD_NAMESPACE (downward API)")
	}
	rec := &deferredRecorder{}
	lock, err := resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, o.LeaderElectionNamespace, LeaderElectionID,
		resourcelock.ResourceLockConfig{Identity: identity, EventRecorder: rec}, rest.AddUserAgent(cfg, "leader-election"), leaderRenewDeadline)
	if err != nil {
		return "", nil, nil, fmt.Errorf("leader election lock %s/%s: %w", o.LeaderElectionNamespace, LeaderElectionID, err)
	}
	return identity, lock, rec, nil
}

// deferredRecorder gives the Lease lock, which exists before the manager,
// the manager's events.k8s.io recorder.
type deferredRecorder struct {
	mu sync.RWMutex
	r  recorder.EventRecorder
}

func (d *deferredRecorder) set(r recorder.EventRecorder) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.r = r
}

func (d *deferredRecorder) Eventf(obj runtime.Object, eventType, reason, message string, args ...any) {
	d.mu.RLock()
	r := d.r
	d.mu.RUnlock()
	if r != nil {
		r.Eventf(obj, nil, eventType, reason, "LeaderElection", message, args...)
	}
}
