package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeName is the node's name.
const NodeName = "node"

// kubeletConfig is the KubeletConfiguration for this machine: cgroup v1
// (failCgroupV1: false), swap present (failSwapOn: false), no
// CAP_SYS_RESOURCE (oomScoreAdj 0, the kubelet's own), pods under
// CgroupParent, and no eviction or image garbage collection (the images are
// imported, there is no registry to pull them again).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[1]q}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://%[2]s
cgroupDriver: cgroupfs
cgroupRoot: /%[3]s
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
resolvConf: ""
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", imagefs.available: "0%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 5s
fileCheckFrequency: 5s
`

func (c *Cluster) startKubelet(assets string) error {
	dir := filepath.Join(c.dir, "kubelet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := makeCgroupParent(); err != nil {
		return err
	}
	config := filepath.Join(dir, "config.yaml")
	content := fmt.Sprintf(kubeletConfig, c.pki.path("ca.crt"), c.containerdSocket, CgroupParent)
	if err := os.WriteFile(config, []byte(content), 0o644); err != nil {
		return err
	}
	p, err := c.start("kubelet", filepath.Join(assets, "kubelet"),
		"--config="+config, "--kubeconfig="+c.kubeletKubeconfig,
		"--node-ip="+NodeIP, "--hostname-override="+NodeName,
		"--root-dir=/var/lib/kubelet", "--cert-dir="+filepath.Join(dir, "pki"), "--v=2")
	if err != nil {
		return err
	}
	return waitFor("node "+NodeName+" Ready", 2*time.Minute, p, func() error {
		node, err := c.Client.CoreV1().Nodes().Get(context.Background(), NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready %s: %s", cond.Status, cond.Message)
			}
		}
		return fmt.Errorf("no Ready condition")
	})
}
