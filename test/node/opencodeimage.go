package node

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/angryninja/opencode-injector/test/opencode"
)

// OpenCodeImage is the reference the OpenCode-with-git image is imported
// as: the flux example's image, built here instead of pulled.
var OpenCodeImage = "ghcr.io/angryninja/opencode-git:" + opencode.Version

// openCodePackages are the Debian packages of the OpenCode image beside
// the opencode binary: git (OpenCode's snapshots, git pull and push in the
// workspace) and a /bin/sh (the injected credential helper is a shell
// function), with their dependencies.
var openCodePackages = []string{"git", "dash"}

// OpenCodeImageConfig is the image's config: the release image's
// entrypoint (opencode), user (root; the pod's securityContext chooses the
// real one) and HOME.
var OpenCodeImageConfig = v1.Config{
	Entrypoint: []string{"opencode"},
	Env: []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
	},
}

// BuildOpenCodeImage writes the OpenCode-with-git image as a `docker save`
// archive into cacheDir, once per OpenCode version and recipe, and returns
// its path.
// It needs the network (npm, Debian's archive): call it before the
// namespaces. The release builds the same image from the official Alpine
// image (deploy/opencode-image); here it is Debian's git and the pinned
// opencode-ai npm package's glibc binary, assembled with
// go-containerregistry. OpenCodeEquivalence checks what must match.
func BuildOpenCodeImage(cacheDir string, log io.Writer) (string, error) {
	// The recipe is part of the name: a changed one builds anew.
	recipe := sha256.Sum256(fmt.Appendf(nil, "%q %+v", openCodePackages, OpenCodeImageConfig))
	archive := filepath.Join(cacheDir, fmt.Sprintf("opencode-git-%s-%x.tar", opencode.Version, recipe[:6]))
	if _, err := os.Stat(archive); err == nil {
		return archive, nil
	}
	bin, err := opencode.Binary(log)
	if err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(cacheDir, ".opencode-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	fmt.Fprintf(log, "node: building the OpenCode image (opencode-ai %s, Debian's %s), once\n", opencode.Version, strings.Join(openCodePackages, ", "))
	if err := extractDebianPackages(work, rootfs, openCodePackages); err != nil {
		return "", err
	}
	if err := finishRootfs(rootfs, bin); err != nil {
		return "", err
	}
	img, err := imageFromDir(rootfs, OpenCodeImageConfig)
	if err != nil {
		return "", err
	}
	tmp := archive + ".tmp"
	if err := writeArchive(tmp, OpenCodeImage, img); err != nil {
		return "", err
	}
	return archive, os.Rename(tmp, archive)
}

// extractDebianPackages downloads pkgs and everything they depend on
// (apt-get download: this machine's Debian release) and unpacks them into
// rootfs, without running their maintainer scripts (finishRootfs does what
// those would for this image).
func extractDebianPackages(work, rootfs string, pkgs []string) error {
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
		"--no-breaks", "--no-replaces", "--no-enhances"}, pkgs...)
	out, err := exec.Command("apt-cache", args...).Output()
	if err != nil {
		return fmt.Errorf("apt-cache depends %v: %w", pkgs, err)
	}
	closure := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		// Dependency lines are indented; virtual packages are <named>.
		if line != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "<") {
			closure[line] = true
		}
	}
	names := make([]string, 0, len(closure))
	for n := range closure {
		names = append(names, n)
	}
	sort.Strings(names)
	debs := filepath.Join(work, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	download := exec.Command("apt-get", append([]string{"download", "-qq"}, names...)...)
	download.Dir = debs
	if out, err := download.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download (run `apt-get update` as root if the lists are missing): %w: %s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil {
		return err
	}
	if len(files) != len(names) {
		return fmt.Errorf("apt-get download fetched %d packages of %d", len(files), len(names))
	}
	for _, f := range files {
		if out, err := exec.Command("dpkg-deb", "-x", f, rootfs).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(f), err, out)
		}
	}
	return nil
}

// finishRootfs adds what the packages' maintainer scripts and the base
// image would: /bin/sh, the users, /tmp, the dynamic linker's cache, the CA
// roots, and the opencode binary.
func finishRootfs(rootfs, opencodeBin string) error {
	files := map[string]string{
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":      "root:x:0:\nnogroup:x:65534:\n",
		"etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	for dir, mode := range map[string]os.FileMode{"root": 0o700, "tmp": 0o1777, "usr/local/bin": 0o755, "etc/ssl/certs": 0o755} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(rootfs, dir), mode); err != nil {
			return err
		}
	}
	if err := os.Symlink("dash", filepath.Join(rootfs, "bin", "sh")); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := copyFile("/etc/ssl/certs/ca-certificates.crt", filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"), 0o644); err != nil {
		return fmt.Errorf("CA roots: %w", err)
	}
	if err := copyFile(opencodeBin, filepath.Join(rootfs, "usr/local/bin/opencode"), 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("ldconfig", "-r", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("ldconfig -r: %w: %s", err, out)
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}
