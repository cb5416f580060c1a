package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// CheckRuntimeVersions requires the containerd and runc the node runs to
// be the Debian versions pinned in the setup script depsScript
// (hack/test-deps.sh: lines containerd_version= and runc_version=): the
// node was set up and its figures measured with exactly those.
func CheckRuntimeVersions(depsScript string) error {
	pins, err := readPins(depsScript)
	if err != nil {
		return err
	}
	for _, bin := range []string{"containerd", "runc"} {
		want := pins[bin+"_version"]
		if want == "" {
			return fmt.Errorf("%s pins no %s_version", depsScript, bin)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s --version: %w: %s", bin, err, out)
		}
		if !strings.Contains(string(out), want) {
			return fmt.Errorf("%s is not the pinned version %s (%s --version: %s): run hack/test-deps.sh as root to install it",
				bin, want, bin, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// readPins reads the script's name=value lines.
func readPins(script string) (map[string]string, error) {
	b, err := os.ReadFile(script)
	if err != nil {
		return nil, fmt.Errorf("read the pinned versions: %w", err)
	}
	pins := map[string]string{}
	lines := bufio.NewScanner(bytes.NewReader(b))
	for lines.Scan() {
		if name, value, ok := strings.Cut(lines.Text(), "="); ok && !strings.ContainsAny(name, " \t#") {
			pins[name] = value
		}
	}
	return pins, lines.Err()
}
