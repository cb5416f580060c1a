package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// The node's network: a veth pair inside the suite's network namespace
// holds the node's address (the kubelet refuses a loopback one; dummy
// interfaces are not available here), and the pods' bridge is CNI's.
const (
	NodeIP      = "10.77.0.1"
	nodeCIDR    = NodeIP + "/24"
	PodSubnet   = "10.88.0.0/16"
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the first address of ServiceCIDR, the
	// `kubernetes` Service's ClusterIP.
	KubernetesServiceIP = "10.96.0.1"
	APIServerPort       = 6443
)

// Init is StageInit: PID 1 of the suite's namespaces. It makes the mounts
// private, mounts /proc for the new PID namespace and a tmpfs over each of
// machinePaths, brings the network up, runs the tests as its child while
// reaping orphans (containerd's shims), and at the end kills everything
// left in the namespace. It returns the tests' exit code.
func Init() int {
	if err := setUpNamespaces(); err != nil {
		fmt.Fprintln(os.Stderr, "node: set up the namespaces:", err)
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), StageEnv+"="+StageTest)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "node: start the tests:", err)
		return 1
	}
	code := reapUntil(cmd.Process.Pid)
	// SIGKILL to -1 from a PID namespace's init reaches every other
	// process in the namespace.
	_ = syscall.Kill(-1, syscall.SIGKILL)
	reapUntil(-1)
	return code
}

// reapUntil reaps children until pid exits (and returns its exit code),
// or with pid -1 until none is left.
func reapUntil(pid int) int {
	for {
		var status syscall.WaitStatus
		got, err := syscall.Wait4(-1, &status, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 1
		}
		if got == pid {
			if status.Signaled() {
				return 128 + int(status.Signal())
			}
			return status.ExitStatus()
		}
	}
}

func setUpNamespaces() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, p := range machinePaths {
		if err := syscall.Mount("tmpfs", p, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mount a tmpfs on %s: %w", p, err)
		}
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "node0", "type", "veth", "peer", "name", "node1"},
		{"addr", "add", nodeCIDR, "dev", "node0"},
		{"link", "set", "node0", "up"},
		{"link", "set", "node1", "up"},
		// A default route, so that components picking "the host's
		// address" pick the node's.
		{"route", "add", "default", "dev", "node0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
	}
	return nil
}
