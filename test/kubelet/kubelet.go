// Package kubelet plays the kubelet's part for a pod spec outside a
// cluster: it resolves container env from a Secret and the downward API
// and maps volume mounts to host directories, so tests and the demo can
// run the injected init container's command for real.
package kubelet

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Pod is a pod spec with its Secret's data and its volumes on the host.
type Pod struct {
	Spec    corev1.PodSpec
	Secret  map[string]string // data of every Secret the env refers to
	Volumes map[string]string // volume name -> host directory
	Image   map[string]string // env the image itself provides (trust store, PATH)
}

// Container finds an init or app container by name.
func (p *Pod) Container(name string) (corev1.Container, error) {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return c, nil
			}
		}
	}
	return corev1.Container{}, fmt.Errorf("no container %s", name)
}

// HostPath maps a path inside container c to the host.
func (p *Pod) HostPath(c corev1.Container, path string) string {
	for _, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/") {
			return p.Volumes[m.Name] + strings.TrimPrefix(path, m.MountPath)
		}
	}
	return path
}

// Env resolves c's env as the kubelet does (Secret keys and the downward
// API's resource fields), with absolute paths mapped to the host. A
// required Secret key that is missing fails, as the kubelet's
// CreateContainerConfigError does.
func (p *Pod) Env(c corev1.Container) ([]string, error) {
	env := []string{}
	for k, v := range p.Image {
		env = append(env, k+"="+v)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			val, ok := p.Secret[ref.Key]
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				return nil, fmt.Errorf("CreateContainerConfigError: key %s missing from Secret %s", ref.Key, ref.Name)
			}
			if ok {
				env = append(env, e.Name+"="+val)
			}
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			val, err := p.ResourceFieldValue(c, e.ValueFrom.ResourceFieldRef)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env = append(env, e.Name+"="+val)
		case strings.HasPrefix(e.Value, "/"):
			env = append(env, e.Name+"="+p.HostPath(c, e.Value))
		default:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env, nil
}

// Command is container c's command and args as a process, with binary
// standing in for the command's path, or for the image's ENTRYPOINT when
// the container sets no command.
func (p *Pod) Command(c corev1.Container, binary string) (*exec.Cmd, error) {
	env, err := p.Env(c)
	if err != nil {
		return nil, err
	}
	if len(c.Command) > 1 {
		return nil, fmt.Errorf("container %s: want one command, got %q", c.Name, c.Command)
	}
	cmd := exec.Command(binary, c.Args...)
	cmd.Env = append(env, "PATH="+os.Getenv("PATH"))
	if c.WorkingDir != "" {
		cmd.Dir = p.HostPath(c, c.WorkingDir)
	}
	return cmd, nil
}
