package node

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/angryninja/opencode-injector/injection"
)

// InjectorImageRepo is the injector image's repository, as deploy/ names it.
const InjectorImageRepo = injection.ImageRepository

// BuildInjectorImage builds the injector image as `make image` does
// (hack/image, an OCI layout), for this machine's platform only, with
// version compiled in, and returns the layout as a tar archive in dir, for
// ImportImage. Inside the namespaces there is no network: the modules
// must be in the module cache already (building the tests put them there).
func BuildInjectorImage(root, dir, version string, log io.Writer) (string, error) {
	layout := filepath.Join(dir, "injector-"+version)
	cmd := exec.Command("go", "run", "./hack/image", "-version", version, "-platforms", "linux/"+runtime.GOARCH, "-out", layout)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/image -version %s: %w", version, err)
	}
	archive := layout + ".tar"
	f, err := os.Create(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := writeTar(f, layout); err != nil {
		return "", err
	}
	return archive, f.Close()
}
