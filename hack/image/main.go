// Command image builds the opencode-injector container image without a
// Docker daemon: the static binary (CGO_ENABLED=0) cross-compiled for each
// platform, on an empty base, with rootfs/ (the nonroot user) beside it.
// The CA roots are compiled into the binary (golang.org/x/crypto/x509roots/fallback),
// so the image needs no CA bundle. It writes a multi-platform OCI layout to
// -out and, with -push, pushes the same index to a registry (credentials from
// the Docker config, as `docker login` writes them) and prints its digest.
//
// The Dockerfile at the repository root builds the equivalent image for
// people who build with Docker; hack/image's test keeps the two in step.
//
//	go run ./hack/image -version v0.2.0 -out bin/image [-push ghcr.io/angryninja/opencode-injector:v0.2.0]
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/angryninja/opencode-injector/contract"
)

// User is the image's user, nonroot in rootfs/etc/passwd, as the
// Dockerfile's USER.
const User = "65532:65532"

// Options say what to build.
type Options struct {
	Version   string        // -X main.version, and the layout's ref name
	Platforms []v1.Platform // each gets its own image in the index
	Root      string        // the repository root (holds go.mod)
	Created   time.Time     // image and file times; SOURCE_DATE_EPOCH or the Unix epoch
	Labels    map[string]string
	Log       io.Writer
}

func main() {
	var (
		version   = flag.String("version", "dev", "version compiled into the binary (main.version) and the layout's ref name")
		out       = flag.String("out", "bin/image", "directory of the OCI image layout to write (replaced)")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch[/variant]")
		push      = flag.String("push", "", "also push the index to this reference (registry/repo:tag)")
		digestOut = flag.String("digest-file", "", "with -push, write the pushed index's repo@sha256:… here")
		source    = flag.String("source", "https://github.com/angryninja/opencode-injector", "org.opencontainers.image.source label")
		revision  = flag.String("revision", "", "org.opencontainers.image.revision label (a commit)")
	)
	flag.Parse()
	root, err := repoRoot()
	if err != nil {
		fail(err)
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		fail(err)
	}
	created, err := sourceDateEpoch()
	if err != nil {
		fail(err)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":   "opencode-injector",
		"org.opencontainers.image.source":  *source,
		"org.opencontainers.image.version": *version,
	}
	if *revision != "" {
		labels["org.opencontainers.image.revision"] = *revision
	}
	idx, err := Build(context.Background(), Options{Version: *version, Platforms: plats, Root: root, Created: created, Labels: labels, Log: os.Stderr})
	if err != nil {
		fail(err)
	}
	if err := WriteLayout(*out, idx, *version); err != nil {
		fail(err)
	}
	d, _ := idx.Digest()
	fmt.Fprintf(os.Stderr, "wrote %s (index %s)\n", *out, d)
	if *push != "" {
		pushed, err := Push(context.Background(), *push, idx, authn.DefaultKeychain)
		if err != nil {
			fail(err)
		}
		fmt.Println(pushed)
		if *digestOut != "" {
			if err := os.WriteFile(*digestOut, []byte(pushed+"\n"), 0o644); err != nil {
				fail(err)
			}
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

// Build cross-compiles the binary for every platform and assembles the
// multi-platform index.
func Build(ctx context.Context, o Options) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("no platform to build")
	}
	rootfs, err := rootfsEntries(filepath.Join(o.Root, "hack", "image", "rootfs"))
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "opencode-injector-image-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		bin := filepath.Join(tmp, strings.ReplaceAll(p.String(), "/", "-"))
		if err := compile(ctx, o, p, bin); err != nil {
			return nil, err
		}
		img, err := platformImage(o, p, bin, rootfs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		pl := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pl}})
	}
	return idx, nil
}

// compile builds the static binary for one platform.
func compile(ctx context.Context, o Options, p v1.Platform, out string) error {
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+o.Version, "-o", out, "./cmd/opencode-injector")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "building %s for %s\n", o.Version, p)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, b)
	}
	return nil
}

func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// file is one entry of the image's only layer.
type file struct {
	name string // without a leading slash
	mode int64
	dir  bool
	data []byte
}

// rootfsEntries reads rootfs/ (files owned by root, 0644).
func rootfsEntries(dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out = append(out, file{name: rel, mode: 0o755, dir: true})
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, file{name: rel, mode: 0o644, data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return out, nil
}

// platformImage is the empty base plus one layer: rootfs/ (the nonroot
// user in etc/passwd and etc/group) and the binary at
// contract.SeedBinaryPath, all owned by root. Both containers run with a
// read-only root filesystem and write only to their volumes.
func platformImage(o Options, p v1.Platform, bin string, rootfs []file) (v1.Image, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read the binary: %w", err)
	}
	files := append([]file{
		{name: strings.TrimPrefix(contract.SeedBinaryPath, "/"), mode: 0o755, data: b},
	}, rootfs...)
	tarball, err := layerTar(files, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarballLayer(tarball)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: o.Created},
		CreatedBy: "hack/image: opencode-injector " + o.Version,
	}})
	if err != nil {
		return nil, fmt.Errorf("append the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{contract.SeedBinaryPath},
		Cmd:        []string{"serve"},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		WorkingDir: "/",
		Labels:     o.Labels,
	}
	return mutate.ConfigFile(img, cf)
}

// layerTar writes files, with every parent directory, in name order, with
// fixed times: the same binary gives the same layer.
func layerTar(files []file, created time.Time) ([]byte, error) {
	all := map[string]file{}
	for _, f := range files {
		all[f.name] = f
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = file{name: d, mode: 0o755, dir: true}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := all[n]
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: created, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func tarballLayer(b []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return l, nil
}

// WriteLayout replaces dir with an OCI layout holding idx, named version.
func WriteLayout(dir string, idx v1.ImageIndex, version string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the old layout: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": version,
	})); err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	return nil
}

// Push pushes idx to ref and returns repo@digest.
func Push(ctx context.Context, ref string, idx v1.ImageIndex, keys authn.Keychain, opts ...name.Option) (string, error) {
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("-push %q: %w", ref, err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(keys)); err != nil {
		return "", fmt.Errorf("push %s: %w", r, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Name() + "@" + d.String(), nil
}

func parsePlatforms(v string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, s := range strings.Split(v, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("-platforms: %q is not os/arch", s)
		}
		out = append(out, *p)
	}
	return out, nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH (reproducible builds), else the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// repoRoot is the directory of the main module's go.mod, as the go command
// finds it from the working directory.
func repoRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("no go.mod above the working directory")
	}
	return filepath.Dir(gomod), nil
}
