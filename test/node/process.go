package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is a component running with its output in a log file.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(logDir, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports an error when the process has ended (it should not have).
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail())
	default:
		return nil
	}
}

// tail is the end of the process's log, for an error message.
func (p *process) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return p.name + " log (" + p.log + "):\n" + strings.Join(lines, "\n")
}

// stop sends SIGTERM and waits for the process to end, SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	var exit *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exit) {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

// waitFor polls ready until it returns nil, the process exits or timeout
// passes.
func waitFor(what string, timeout time.Duration, p *process, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p != nil {
			if exitErr := p.exited(); exitErr != nil {
				return fmt.Errorf("waiting for %s: %w", what, exitErr)
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s not ready after %s: %v", what, timeout, err)
			if p != nil {
				msg += "\n" + p.tail()
			}
			return errors.New(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
