package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImportProgram builds the Go program in the package directory pkg (static,
// CGO_ENABLED=0) into an image holding it as /<base name of pkg>, its
// entrypoint, run as user, and imports the image into the node as ref.
func (c *Cluster) ImportProgram(ctx context.Context, pkg, ref, user string) error {
	prog := filepath.Base(pkg)
	dir, err := os.MkdirTemp(c.dir, prog+"-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rootfs := filepath.Join(dir, "rootfs")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, prog), pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkg, err, out)
	}
	img, err := imageFromDir(rootfs, v1.Config{Entrypoint: []string{"/" + prog}, User: user})
	if err != nil {
		return err
	}
	archive := filepath.Join(dir, "image.tar")
	if err := writeArchive(archive, ref, img); err != nil {
		return err
	}
	return c.ImportImage(ctx, archive)
}

// importPause imports the pause program (./pause) as PauseImage, the
// sandbox image containerd is configured with.
func (c *Cluster) importPause(ctx context.Context) error {
	return c.ImportProgram(ctx, "./pause", PauseImage, "65535:65535")
}
