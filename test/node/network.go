package node

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
)

// routeKubernetesService sends the kubernetes Service's ClusterIP:443 to
// the API server, which is what kube-proxy's rules amount to for it (the
// only Service the pods dial by its ClusterIP here).
func (c *Cluster) routeKubernetesService(ctx context.Context) error {
	args := []string{"-t", "nat", "-A", "PREROUTING", "-d", KubernetesServiceIP, "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", NodeIP + ":" + strconv.Itoa(APIServerPort)}
	if out, err := exec.CommandContext(ctx, "iptables", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %v: %w: %s", args, err, out)
	}
	return nil
}
