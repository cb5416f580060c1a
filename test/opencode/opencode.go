// Package opencode provides the real OpenCode server for tests and the
// demo: the pinned opencode-ai npm package, installed once into the test
// cache, and a server started the way the injected pod starts it.
package opencode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/test/kubelet"
)

// Version is the opencode-ai npm package the tests and the demo run.
const Version = "1.18.33"

// BinaryEnv names an existing opencode binary to use instead of installing
// the npm package (for machines that cannot reach the npm registry).
const BinaryEnv = "OPENCODE_BIN"

// Offline is env the tests add to the injected container's: it stops
// OpenCode from reaching the internet (the model catalogue, self-update,
// language-server downloads, and the npm install of @opencode-ai/plugin
// into its config directory, sent to a closed port on 127.0.0.1), since
// tests talk only to 127.0.0.1. None of it changes where OpenCode keeps its
// data.
var Offline = map[string]string{
	"OPENCODE_DISABLE_MODELS_FETCH": "true",
	"OPENCODE_DISABLE_AUTOUPDATE":   "true",
	"OPENCODE_DISABLE_LSP_DOWNLOAD": "true",
	"NPM_CONFIG_REGISTRY":           "http://127.0.0.1:9/",
	"BUN_CONFIG_REGISTRY":           "http://127.0.0.1:9/",
}

// CacheDir is where the npm package is installed:
// ~/.cache/opencode-injector/opencode/<version>, beside the envtest
// binaries.
func CacheDir() (string, error) { return packageDir("opencode", Version) }

// packageDir is the test cache's directory for one version of a package.
func packageDir(name, version string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "opencode-injector", name, version), nil
}

// platformPackage is the npm package opencode-ai takes its binary from on
// this machine (glibc Linux; the image itself uses the musl build).
func platformPackage() (string, error) {
	if runtime.GOOS != "linux" {
		return "", fmt.Errorf("no opencode package chosen for %s", runtime.GOOS)
	}
	switch runtime.GOARCH {
	case "amd64":
		return "opencode-linux-x64", nil
	case "arm64":
		return "opencode-linux-arm64", nil
	}
	return "", fmt.Errorf("no opencode package for linux/%s", runtime.GOARCH)
}

// Binary returns the opencode binary: $OPENCODE_BIN when set, else the
// pinned opencode-ai from the npm registry, installed into CacheDir on the
// first call (progress goes to log).
func Binary(log io.Writer) (string, error) {
	if bin := os.Getenv(BinaryEnv); bin != "" {
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", BinaryEnv, bin, err)
		}
		fmt.Fprintf(log, "opencode: using %s=%s (version %s)\n", BinaryEnv, bin, strings.TrimSpace(string(out)))
		return bin, nil
	}
	pkg, err := platformPackage()
	if err != nil {
		return "", err
	}
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	bin, err := cachedPackage(log, "opencode-ai", Version, dir, filepath.Join("node_modules", pkg, "bin", "opencode"))
	if err != nil {
		return "", fmt.Errorf("%w (or set %s to an opencode binary)", err, BinaryEnv)
	}
	return bin, nil
}

// Server is an OpenCode server started from an injected pod's container.
type Server struct {
	URL      string
	Cmd      *exec.Cmd
	Log      *bytes.Buffer
	password string
	done     chan struct{}
}

// ServeArgs turns the container's args into the ones the test runs: `web`
// becomes `serve` (the same server and UI, without opening a browser), and
// the pod's --hostname/--port become 127.0.0.1 and port.
func ServeArgs(args []string, port int) ([]string, error) {
	if len(args) == 0 || (args[0] != "web" && args[0] != "serve") {
		return nil, fmt.Errorf("the OpenCode container runs %q, not web or serve", args)
	}
	out := []string{"serve"}
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "--hostname", "--port":
			i++ // replaced below
		default:
			out = append(out, args[i])
		}
	}
	return append(out, "--hostname", "127.0.0.1", "--port", strconv.Itoa(port)), nil
}

// Start runs container c of pod as the kubelet would (its env from the
// Secret, its workingDir and mounts mapped to host directories), with
// binary as the image's entrypoint, extra env added, and waits until it
// answers.
func Start(pod *kubelet.Pod, c corev1.Container, binary string, extra map[string]string, wrap ...string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args, err := ServeArgs(c.Args, port)
	if err != nil {
		return nil, err
	}
	c.Args = args
	cmd, err := pod.Command(c, binary)
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if len(wrap) > 0 { // e.g. strace: the wrapper runs the same command
		cmd.Args = append(append([]string{}, wrap...), cmd.Args...)
		cmd.Path = wrap[0]
		if p, err := exec.LookPath(wrap[0]); err == nil {
			cmd.Path = p
		}
	}
	env, err := pod.Env(c)
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), Cmd: cmd, Log: &bytes.Buffer{}, done: make(chan struct{})}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "OPENCODE_SERVER_PASSWORD="); ok {
			s.password = v
		}
	}
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start opencode: %w", err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(2 * time.Minute)
	// While it starts, OpenCode may accept a connection and answer late.
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := probe.Get(s.URL + "/path")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("opencode exited before serving: %v\n%s", cmd.ProcessState, s.Log)
		default:
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return nil, fmt.Errorf("opencode did not answer on %s within 2 minutes\n%s", s.URL, s.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Request sends a request; with auth it carries the pod's password as
// OpenCode's basic auth (user opencode).
func (s *Server) Request(method, path string, body any, auth bool) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.SetBasicAuth("opencode", s.password)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// RSS is the resident memory of the server and every process it started,
// in bytes, from /proc.
func (s *Server) RSS() (int64, error) {
	var total int64
	for pid := range processTree(s.Cmd.Process.Pid) {
		if v, ok := statusBytes(pid, "VmRSS"); ok {
			total += v["VmRSS"]
		}
	}
	if total == 0 {
		return 0, errors.New("no RSS for the opencode process")
	}
	return total, nil
}

// Stop sends SIGTERM, as the kubelet does when the pod is deleted, and
// waits for the server (and what it started) to exit; SIGKILL after 30s,
// the kubelet's default grace period.
func (s *Server) Stop() error {
	pgid := s.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
		return errors.New("opencode did not exit within 30s of SIGTERM")
	}
	return nil
}
