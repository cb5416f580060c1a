package node

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// startControlPlane starts etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler from assets, as kubeadm would configure them for a
// one-node cluster, and returns them once the API server is ready.
func (c *Cluster) startControlPlane(assets string) error {
	p := c.pki
	nodeIP := net.ParseIP(NodeIP)
	if err := p.issue("apiserver", "kube-apiserver", "", []net.IP{nodeIP, net.ParseIP(KubernetesServiceIP), net.IPv4(127, 0, 0, 1)},
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"); err != nil {
		return err
	}
	for _, client := range []struct{ name, cn, org string }{
		{"admin", "kubernetes-admin", "system:masters"},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kubelet", "system:node:" + NodeName, "system:nodes"},
	} {
		if err := p.issue(client.name, client.cn, client.org, nil); err != nil {
			return err
		}
	}
	server := "https://" + net.JoinHostPort(NodeIP, strconv.Itoa(APIServerPort))
	kubeconfigs := map[string]string{}
	for _, name := range []string{"admin", "controller-manager", "scheduler", "kubelet"} {
		path, err := p.kubeconfig(name, server)
		if err != nil {
			return err
		}
		kubeconfigs[name] = path
	}
	c.Kubeconfig = kubeconfigs["admin"]
	c.kubeletKubeconfig = kubeconfigs["kubelet"]

	if _, err := c.start("etcd", filepath.Join(assets, "etcd"),
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--unsafe-no-fsync"); err != nil {
		return err
	}
	apiserver, err := c.start("kube-apiserver", filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--advertise-address="+NodeIP, "--secure-port="+strconv.Itoa(APIServerPort),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--authorization-mode=Node,RBAC",
		// kubectl logs and exec: the API server calls the kubelet at
		// the node's InternalIP with a client certificate.
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		// Webhooks are called at their Service's endpoint addresses:
		// there is no kube-proxy on the API server's side.
		"--enable-aggregator-routing=true",
		"--allow-privileged=true")
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if err := waitFor("kube-apiserver", 60*time.Second, apiserver, func() error {
		_, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err
	}); err != nil {
		return err
	}
	if _, err := c.start("kube-controller-manager", filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfigs["controller-manager"],
		"--authentication-kubeconfig="+kubeconfigs["controller-manager"],
		"--authorization-kubeconfig="+kubeconfigs["controller-manager"],
		"--bind-address=127.0.0.1", "--leader-elect=false",
		"--service-account-private-key-file="+p.path("sa.key"),
		"--root-ca-file="+p.path("ca.crt"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--controllers=*,-nodeipam"); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig="+kubeconfigs["scheduler"],
		"--authentication-kubeconfig="+kubeconfigs["scheduler"],
		"--authorization-kubeconfig="+kubeconfigs["scheduler"],
		"--bind-address=127.0.0.1", "--leader-elect=false"); err != nil {
		return err
	}
	return nil
}

// start starts a component, remembering it for Stop.
func (c *Cluster) start(name, bin string, args ...string) (*process, error) {
	p, err := startProcess(c.logs, name, bin, args...)
	if err != nil {
		return nil, err
	}
	c.processes = append(c.processes, p)
	return p, nil
}
