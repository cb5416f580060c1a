package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// containerdNamespace is the containerd namespace the CRI plugin (and so the
// kubelet) uses.
const containerdNamespace = "k8s.io"

// PauseImage is the pod sandbox image, built locally (pause.go).
const PauseImage = "localhost/opencode-node-test/pause:1"

// containerdConfig is containerd 1.6's configuration for the node: its own
// root, state and socket (a system config.toml may exist), the pause image
// built here, and CNI's bridge from Debian's plugins. restrict_oom_score_adj:
// the machine lacks CAP_SYS_RESOURCE, so runc cannot lower a container's
// OOM score below its own. The opt plugin would write to /opt.
const containerdConfig = `version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[5]q
`

// cniConfig is the pods' network: a bridge with the node as gateway and
// host-local addresses from PodSubnet (CRI adds loopback itself).
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [{
    "type": "bridge",
    "bridge": "cni0",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
`

func (c *Cluster) startContainerd() error {
	dir := filepath.Join(c.dir, "containerd")
	cniDir := filepath.Join(dir, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-pods.conflist"), fmt.Appendf(nil, cniConfig, PodSubnet), 0o644); err != nil {
		return err
	}
	c.containerdSocket = filepath.Join(dir, "containerd.sock")
	config := filepath.Join(dir, "config.toml")
	content := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.containerdSocket, PauseImage, cniDir)
	if err := os.WriteFile(config, []byte(content), 0o644); err != nil {
		return err
	}
	p, err := c.start("containerd", "containerd", "--config", config)
	if err != nil {
		return err
	}
	return waitFor("containerd", 30*time.Second, p, func() error {
		return exec.Command("ctr", "--address", c.containerdSocket, "version").Run()
	})
}

// ctr runs containerd's client on the node's containerd, in the CRI's
// namespace.
func (c *Cluster) ctr(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"--address", c.containerdSocket, "--namespace", containerdNamespace}, args...)
	out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %v: %w: %s", args, err, out)
	}
	return out, nil
}

// ImportImage imports an image archive (docker save or OCI layout tar) into
// the node's containerd, as a registry pull would leave it; args are ctr
// images import's flags (--base-name, --digests, --platform…).
func (c *Cluster) ImportImage(ctx context.Context, archive string, args ...string) error {
	_, err := c.ctr(ctx, append(append([]string{"images", "import"}, args...), archive)...)
	return err
}
