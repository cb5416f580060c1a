package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Cluster is the running one-node cluster (in StageTest).
type Cluster struct {
	Config     *rest.Config
	Client     kubernetes.Interface
	Kubeconfig string // the admin's, for kubectl-like clients

	dir               string
	logs              string
	pki               *pki
	processes         []*process
	kubeletKubeconfig string
	containerdSocket  string
}

// Start starts the control plane from assets (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet: hack/envtest-assets.sh
// --node), containerd with the pause image, the kubelet, and returns once
// the node is Ready. Call it in StageTest only.
func Start(ctx context.Context, assets string) (*Cluster, error) {
	if Stage() != StageTest {
		return nil, errors.New("node.Start runs only inside the suite's namespaces (StageTest)")
	}
	c := &Cluster{dir: WorkDir(), logs: filepath.Join(WorkDir(), "logs")}
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		return nil, err
	}
	var err error
	if c.pki, err = newPKI(filepath.Join(c.dir, "pki")); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	steps := []func() error{
		func() error { return c.startControlPlane(assets) },
		// Pods reach the API server at the kubernetes Service's
		// ClusterIP: one DNAT rule does what kube-proxy would.
		func() error { return c.routeKubernetesService(ctx) },
		c.startContainerd,
		func() error { return c.importPause(ctx) },
		func() error { return c.startKubelet(assets) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, errors.Join(err, c.Stop())
		}
	}
	return c, nil
}

// Stop stops every component, the last started first. Whatever keeps
// running (containers) the suite's init kills when the tests end.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.processes) - 1; i >= 0; i-- {
		errs = append(errs, c.processes[i].stop(10*time.Second))
	}
	return errors.Join(errs...)
}

// WriteLogTails writes the end of every component's log to w, for a failed
// run (the run's directory is removed afterwards).
func (c *Cluster) WriteLogTails(w io.Writer) {
	for _, p := range c.processes {
		fmt.Fprintln(w, p.tail())
	}
}
