package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/angryninja/opencode-injector/contract"
)

const testVersion = "v0.0.0-imagetest"

var platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// built is the layout the tests share: building it cross-compiles twice.
var built struct {
	dir string
	idx v1.ImageIndex
	err error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "image-test-")
	if err != nil {
		panic(err)
	}
	built.dir = filepath.Join(dir, "layout")
	idx, err := Build(context.Background(), Options{Version: testVersion, Platforms: platforms, Root: "../..", Created: time.Unix(0, 0).UTC()})
	if err == nil {
		err = WriteLayout(built.dir, idx, testVersion)
	}
	built.idx, built.err = idx, err
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fromLayout reads the image index back from the layout on disk, as a
// registry client or `crane push` would.
func fromLayout(t *testing.T) v1.ImageIndex {
	t.Helper()
	if built.err != nil {
		t.Fatal(built.err)
	}
	top, err := layout.ImageIndexFromPath(built.dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != testVersion {
		t.Fatalf("index.json: want one index named %s, got %+v", testVersion, m.Manifests)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("the layout's index does not validate: %v", err)
	}
	return idx
}

// eachFile walks the image's flattened filesystem (go-containerregistry's
// mutate.Extract) until fn returns false.
func eachFile(t *testing.T, img v1.Image, fn func(h *tar.Header, r io.Reader) bool) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fn(h, tr) {
			return
		}
	}
}

// layerFiles reads the header of every file of the image.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	eachFile(t, img, func(h *tar.Header, _ io.Reader) bool {
		out[strings.TrimSuffix(h.Name, "/")] = h
		return true
	})
	return out
}

// extract copies one file of the image to dst.
func extract(t *testing.T, img v1.Image, name, dst string) {
	t.Helper()
	found := false
	eachFile(t, img, func(h *tar.Header, r io.Reader) bool {
		if h.Name != name {
			return true
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			t.Fatal(err)
		}
		found = true
		return false
	})
	if !found {
		t.Fatalf("%s is not in the image", name)
	}
}

func imageFor(t *testing.T, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == p.OS && d.Platform.Architecture == p.Architecture {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image for %s in the index", p)
	return nil
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// TestLayoutHoldsBothPlatforms: the index names linux/amd64 and linux/arm64;
// each image runs as the nonroot user, starts the binary at
// contract.SeedBinaryPath with `serve`, and holds a static binary compiled
// for its own architecture.
func TestLayoutHoldsBothPlatforms(t *testing.T) {
	idx := fromLayout(t)
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != len(platforms) {
		t.Errorf("index holds %d images, want %d", len(m.Manifests), len(platforms))
	}
	bin := strings.TrimPrefix(contract.SeedBinaryPath, "/")
	for _, p := range platforms {
		t.Run(p.String(), func(t *testing.T) {
			img := imageFor(t, idx, p)
			if err := validate.Image(img); err != nil {
				t.Fatalf("image does not validate: %v", err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != p.OS || cf.Architecture != p.Architecture {
				t.Errorf("config says %s/%s", cf.OS, cf.Architecture)
			}
			if cf.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532 (nonroot)", cf.Config.User)
			}
			if strings.Join(cf.Config.Entrypoint, " ") != contract.SeedBinaryPath || strings.Join(cf.Config.Cmd, " ") != "serve" {
				t.Errorf("entrypoint %q cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
			}
			files := layerFiles(t, img)
			h, ok := files[bin]
			if !ok || h.Mode&0o111 == 0 || h.Uid != 0 {
				t.Fatalf("%s: %+v, want an executable owned by root (not writable by the user)", bin, h)
			}
			for name, h := range files {
				if h.Uid != 0 || h.Gid != 0 || h.Mode&0o022 != 0 {
					t.Errorf("%s: uid %d gid %d mode %o, want root-owned and not writable by others", name, h.Uid, h.Gid, h.Mode)
				}
			}
			if _, ok := files["etc/passwd"]; !ok {
				t.Error("no etc/passwd")
			}
			dst := filepath.Join(t.TempDir(), "opencode-injector")
			extract(t, img, bin, dst)
			f, err := elf.Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != elfMachine[p.Architecture] {
				t.Errorf("binary is for %s, want %s", f.Machine, elfMachine[p.Architecture])
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Error("binary is dynamically linked: it cannot run on an empty base")
				}
			}
		})
	}
}

// hostBinary extracts the binary built for this machine.
func hostBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" || elfMachine[runtime.GOARCH] == 0 {
		t.Skipf("no image for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	img := imageFor(t, fromLayout(t), v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
	dst := filepath.Join(t.TempDir(), "opencode-injector")
	extract(t, img, strings.TrimPrefix(contract.SeedBinaryPath, "/"), dst)
	return dst
}

func TestHostBinaryRuns(t *testing.T) {
	bin := hostBinary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "opencode-injector "+testVersion+" ") {
		t.Errorf("version: %v: %s", err, out)
	}
	out, err = exec.Command(bin, "seed", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-repo") || !strings.Contains(string(out), "-workspace") {
		t.Errorf("seed --help: %v: %s", err, out)
	}
}

// imageTrustStore is the environment of a process in the image: the base is
// empty, so there is no CA file or directory and Go falls back to the roots
// compiled into the binary.
func imageTrustStore() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSL_CERT_") && !strings.HasPrefix(kv, "GITHUB_TOKEN=") {
			env = append(env, kv)
		}
	}
	return append(env, "SSL_CERT_FILE=/nonexistent/ca.pem", "SSL_CERT_DIR=/nonexistent")
}

// TestSeedVerifiesTLSWithTheImageRoots runs the image's seed, with the trust
// store it has in the image (no CA file: the roots compiled into the
// binary), against a TLS server on 127.0.0.1 whose CA is not among those
// roots: it must refuse the server (a certificate error, exit 5) and send it
// nothing past the handshake; with SSL_CERT_FILE naming the CA it must reach
// it. That the compiled-in roots hold github.com's is
// TestBinaryEmbedsRootsForGitHub (no test here reaches github.com).
func TestSeedVerifiesTLSWithTheImageRoots(t *testing.T) {
	bin := hostBinary(t)
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	seed := func(env []string) (string, int) {
		ws := filepath.Join(t.TempDir(), "workspace", "repo")
		cmd := exec.Command(bin, "seed", "--repo", "https://"+u.Host+"/owner/repo.git", "--allowed-git-hosts", u.Host,
			"--workspace", ws, "--auth-target", "", "--stall-timeout", "10s")
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}

	out, code := seed(imageTrustStore())
	if code != 5 || !strings.Contains(out, "certificate signed by unknown authority") {
		t.Errorf("a server whose CA is not in the image: exit %d, want 5 and an unknown-authority error:\n%s", code, out)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the untrusted server received %d requests", n)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	env := imageTrustStore()
	env[len(env)-2] = "SSL_CERT_FILE=" + ca
	out, code = seed(env)
	if code != 4 || requests.Load() == 0 {
		t.Errorf("with SSL_CERT_FILE naming the CA: exit %d after %d requests, want 4 (the server answers 404):\n%s", code, requests.Load(), out)
	}
}

// TestBinaryEmbedsRootsForGitHub: the roots compiled into the binary are
// Mozilla's bundle, which holds the root github.com's chain ends in.
func TestBinaryEmbedsRootsForGitHub(t *testing.T) {
	bin, err := os.ReadFile(hostBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	found, n := false, 0
	for r := range bundle.Roots() {
		n++
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName == "USERTrust ECC Certification Authority" {
			found = true
			if !bytes.Contains(bin, r.Certificate) {
				t.Error("the binary does not hold the root of github.com's chain")
			}
		}
	}
	if !found || n < 100 {
		t.Errorf("bundle: %d roots, github.com's root found: %v", n, found)
	}
}

// TestPushAndPull pushes the index to a registry on 127.0.0.1 (the release
// workflow's -push) and pulls it back: same digest, both platforms.
func TestPushAndPull(t *testing.T) {
	if built.err != nil {
		t.Fatal(built.err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pushed, err := Push(context.Background(), host+"/angryninja/opencode-injector:"+testVersion, built.idx, authn.DefaultKeychain, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := built.idx.Digest()
	if pushed != host+"/angryninja/opencode-injector@"+want.String() {
		t.Errorf("Push returned %s, want the index digest %s", pushed, want)
	}
	ref, _ := name.ParseReference(host+"/angryninja/opencode-injector:"+testVersion, name.Insecure)
	got, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}
	for _, p := range platforms {
		imageFor(t, got, p)
	}
}

// TestDockerfileIsEquivalent: the Dockerfile builds the same image for
// people who use Docker: a static binary at contract.SeedBinaryPath on an
// empty base with rootfs/, the same user, entrypoint and command.
func TestDockerfileIsEquivalent(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var final []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "FROM ") {
			final = nil
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			final = append(final, line)
		}
	}
	text := strings.Join(final, "\n")
	for _, want := range []string{
		"FROM scratch",
		"COPY hack/image/rootfs/ /",
		"COPY --from=build /out/opencode-injector " + contract.SeedBinaryPath,
		"USER " + User,
		`ENTRYPOINT ["` + contract.SeedBinaryPath + `"]`,
		`CMD ["serve"]`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the Dockerfile's final stage lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(string(b), "CGO_ENABLED=0") || !strings.Contains(string(b), "-trimpath") {
		t.Error("the Dockerfile does not build the binary the way hack/image does (CGO_ENABLED=0, -trimpath)")
	}
}
