package opencode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// cachedPackage is the path want inside the npm package pkg@version,
// installed once into dir (a version's own directory in the test cache):
// the install goes to a temporary directory renamed into place, so a run
// that is killed half way leaves nothing that looks installed.
func cachedPackage(log io.Writer, pkg, version, dir, want string) (string, error) {
	path := filepath.Join(dir, want)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("installing %s@%s needs npm: %w", pkg, version, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "opencode: installing %s@%s from the npm registry into %s, once\n", pkg, version, dir)
	// --ignore-scripts: no install script of these packages is needed
	// (opencode-ai's only links the platform binary, used from its own
	// package here).
	cmd := exec.Command(npm, "install", "--prefix", tmp, "--no-save", "--no-audit", "--no-fund",
		"--ignore-scripts", "--no-package-lock", pkg+"@"+version)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("npm install %s@%s failed (is the npm registry reachable?): %w\n%s", pkg, version, err, out.String())
	}
	if _, err := os.Stat(filepath.Join(tmp, want)); err != nil {
		return "", fmt.Errorf("npm installed %s@%s without %s: %w", pkg, version, want, err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(path); statErr != nil { // another run may have won the race
			return "", err
		}
	}
	fmt.Fprintf(log, "opencode: installed %s@%s in %s\n", pkg, version, time.Since(start).Round(time.Second))
	return path, nil
}
