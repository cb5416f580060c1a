// Package node runs a real Kubernetes node for the end-to-end suite in
// test/node: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// containerd with runc and the CNI plugins, and a kubelet, all inside
// namespaces the suite creates and removes.
//
// The test binary runs three times over: on the machine it prepares and
// afterwards cleans up (stage ""), as PID 1 of new PID, mount and network
// namespaces it sets up the mounts and the network and reaps orphans
// (StageInit), and as that init's child it runs the tests (StageTest).
// When the tests end, the init kills whatever is left in its PID namespace,
// so no process outlives the suite, and the namespaces (with their mounts,
// interfaces, bridge and iptables rules) go with it.
package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// The stages the test binary runs in, named by StageEnv.
const (
	StageEnv  = "OPENCODE_NODE_STAGE"
	StageInit = "init"
	StageTest = "test"
)

// workDirEnv names the per-run directory on the machine's disk (containerd's
// root, the certificates, the logs, the local volumes), removed afterwards.
const workDirEnv = "OPENCODE_NODE_WORKDIR"

// CgroupParent is the cgroup (in every v1 hierarchy) the kubelet puts its
// pods under (cgroupRoot), removed after the run.
const CgroupParent = "opencode-node-test"

// machinePaths are the fixed paths containerd, runc, the CNI plugins and the
// kubelet write to whatever their configuration says; each is a tmpfs in
// the suite's mount namespace, so nothing is written to the machine's.
var machinePaths = []string{
	"/run/netns", "/run/containerd", "/var/lib/cni", "/var/lib/kubelet",
	"/var/log/containers", "/var/log/pods",
}

// Stage is the stage this process runs in.
func Stage() string { return os.Getenv(StageEnv) }

// WorkDir is the run's directory (in StageTest).
func WorkDir() string { return os.Getenv(workDirEnv) }

// Unavailable says why the node cannot run here, or "".
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "the real node needs root (namespaces, mounts, cgroups, containerd)"
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("%s is missing: run hack/test-deps.sh as root (Debian: containerd runc containernetworking-plugins iproute2 iptables)", bin)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		return "no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory (the node is set up for this machine's cgroup v1)"
	}
	return ""
}

// RunIsolated runs the test binary again as the init of new namespaces
// (which runs the tests), then removes what the run left on the machine:
// the pods' cgroups, the work directory and the mount points it created.
// prepare runs first, on the machine (with its network), and returns env
// for the tests; it may write into the work directory it is given. It
// returns the tests' exit code, or 1 when something could not be removed.
func RunIsolated(prepare func(work string) (env []string, err error)) int {
	code, err := runIsolated(prepare)
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func runIsolated(prepare func(work string) ([]string, error)) (int, error) {
	// A run killed before its clean-up left only empty cgroups and its
	// work directory behind (its processes died with its PID namespace).
	if err := errors.Join(removeCgroups(), removeStaleWorkDirs()); err != nil {
		return 1, err
	}
	work, err := makeWorkDir()
	if err != nil {
		return 1, err
	}
	created, err := makeMountPoints()
	cleanup := func() error {
		return errors.Join(removeCgroups(), os.RemoveAll(work), removeDirs(created))
	}
	if err != nil {
		return 1, errors.Join(err, cleanup())
	}
	// SIGINT or SIGTERM (go test's timeout, Ctrl-C) ends the run with its
	// clean-up: the namespaces' init is killed, and with it everything.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	env, err := prepare(work)
	if err != nil {
		return 1, errors.Join(err, cleanup())
	}
	select {
	case sig := <-stop:
		return 1, errors.Join(fmt.Errorf("stopped by %v", sig), cleanup())
	default:
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(append(os.Environ(), env...), StageEnv+"="+StageInit, workDirEnv+"="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return 1, errors.Join(fmt.Errorf("start the node's namespaces: %w", err), cleanup())
	}
	go func() {
		if sig, ok := <-stop; ok {
			fmt.Fprintf(os.Stderr, "node: %v: stopping the node\n", sig)
			_ = cmd.Process.Kill()
		}
	}()
	code := 0
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return 1, errors.Join(fmt.Errorf("the node's namespaces: %w", err), cleanup())
		}
		code = exit.ExitCode()
	}
	return code, cleanup()
}

// makeMountPoints creates the machinePaths that do not exist yet and
// returns them, deepest last.
func makeMountPoints() ([]string, error) {
	var created []string
	for _, p := range machinePaths {
		var missing []string
		for dir := p; dir != "/"; dir = filepath.Dir(dir) {
			if _, err := os.Lstat(dir); err == nil {
				break
			}
			missing = append([]string{dir}, missing...)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return created, fmt.Errorf("create mount point %s: %w", p, err)
		}
		created = append(created, missing...)
	}
	return created, nil
}

// removeDirs removes the empty directories dirs, deepest first.
func removeDirs(dirs []string) error {
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil {
			errs = append(errs, fmt.Errorf("remove mount point %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}
