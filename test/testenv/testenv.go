// Package testenv starts what the end-to-end tests and `make demo` need: a
// real kube-apiserver and etcd (envtest), the MutatingWebhookConfiguration
// from deploy/ with only its clientConfig swapped, and the injector's own
// manager serving it on 127.0.0.1.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/injection"
)

// Root is the repository root: the nearest directory above the working
// directory that holds go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Assets returns the directory of kube-apiserver and etcd: KUBEBUILDER_ASSETS
// when set, else what hack/envtest-assets.sh builds (cached after the first
// run).
func Assets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "envtest-assets.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build envtest assets: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Render builds a kustomize directory, like `kubectl kustomize DIR`, and
// returns its documents.
func Render(dir string) ([][]byte, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var docs [][]byte
	for _, r := range resMap.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		docs = append(docs, y)
	}
	return docs, nil
}

// WebhookConfiguration is deploy/'s MutatingWebhookConfiguration, as
// kustomize renders it.
func WebhookConfiguration(root string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	return cfg, renderedKind(root, "MutatingWebhookConfiguration", cfg)
}

// ValidatingWebhookConfiguration is deploy/'s ValidatingWebhookConfiguration
// (the scale guard), as kustomize renders it.
func ValidatingWebhookConfiguration(root string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	return cfg, renderedKind(root, "ValidatingWebhookConfiguration", cfg)
}

// renderedKind decodes the one document of kind that deploy/ renders.
func renderedKind(root, kind string, into any) error {
	docs, err := Render(filepath.Join(root, "deploy"))
	if err != nil {
		return err
	}
	for _, doc := range docs {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return err
		}
		if meta.Kind == kind {
			return yaml.Unmarshal(doc, into)
		}
	}
	return fmt.Errorf("deploy/ renders no %s", kind)
}

// Env is a running control plane with the webhook registered and served.
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	cancel context.CancelFunc
	done   chan error
}

// Start starts kube-apiserver and etcd, installs the CRDs in crdFiles,
// registers deploy/'s webhook configuration and serves it with
// app.NewManager and settings s.
func Start(root string, s injection.Settings, crdFiles ...string) (*Env, error) {
	return StartWithFlags(root, s, nil, crdFiles...)
}

// StartWithFlags is Start with kube-apiserver flags set (name to value),
// for a test that needs the API server configured otherwise.
func StartWithFlags(root string, s injection.Settings, apiServerFlags map[string]string, crdFiles ...string) (*Env, error) {
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	cfg, err := WebhookConfiguration(root)
	if err != nil {
		return nil, err
	}
	scaleGuard, err := ValidatingWebhookConfiguration(root)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crdFiles, ErrorIfPathMissing: true},
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{cfg},
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{scaleGuard},
		},
	}
	for name, value := range apiServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(name, value)
	}
	restCfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd from %s: %w", assets, err)
	}
	e := &Env{Env: env, Config: restCfg}
	if err := e.serve(s); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if e.Client, err = client.New(restCfg, client.Options{}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// serve starts the injector (app.NewManager with settings s) on the
// webhook's registered address.
func (e *Env) serve(s injection.Settings) error {
	wio := e.Env.WebhookInstallOptions
	mgr, err := app.NewManager(e.Config, s, app.ServerOptions{
		Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		MetricsBindAddress: "0", HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	var ctx context.Context
	ctx, e.cancel = context.WithCancel(context.Background())
	e.done = make(chan error, 1)
	go func() { e.done <- mgr.Start(ctx) }()
	return waitForTLS(net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort)))
}

// Replace stops the injector and starts another with settings s on the
// same address, as an upgrade of the injector's Deployment does.
func (e *Env) Replace(s injection.Settings) error {
	e.stopInjector()
	return e.serve(s)
}

func (e *Env) stopInjector() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

func waitForTLS(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness only
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server on %s not up: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the webhook, kube-apiserver and etcd down.
func (e *Env) Stop() error {
	e.stopInjector()
	return e.Env.Stop()
}

// crdSources are the modules whose CRDs validate deploy/ server-side, at
// pinned versions, with the directory that holds the CRDs in each.
var crdSources = []struct{ module, dir string }{
	{"github.com/cert-manager/cert-manager@v1.21.2", "deploy/crds"},
	{gatewayAPI, "config/crd/standard"},
	{"github.com/fluxcd/helm-controller@v1.4.3", "config/crd/bases"},
	{"github.com/fluxcd/source-controller@v1.9.6", "config/crd/bases"},
	{"github.com/fluxcd/kustomize-controller@v1.9.6", "config/crd/bases"},
	{"github.com/external-secrets/external-secrets@v1.3.2", "config/crds/bases"},
	{"github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd"},
}

// Gateway API v1.5 and later validate TLSRoute hostnames with CEL's isIP,
// which Kubernetes has only from 1.31: an older control plane (the oldest
// minor the README claims) gets v1.4, the newest release it can serve, as a
// cluster of that version would run.
const (
	gatewayAPI        = "sigs.k8s.io/gateway-api@v1.6.3"
	gatewayAPIFor1_30 = "sigs.k8s.io/gateway-api@v1.4.1"
	gatewayAPINewFrom = 31
)

// CRDFiles downloads the CRD modules into the Go module cache (cached
// after the first run) and returns their CRD manifests, at versions the
// kube-apiserver in KUBEBUILDER_ASSETS can serve.
func CRDFiles() ([]string, error) {
	minor, err := apiServerMinor()
	if err != nil {
		return nil, err
	}
	var files []string
	for _, src := range crdSources {
		if src.module == gatewayAPI && minor < gatewayAPINewFrom {
			src.module = gatewayAPIFor1_30
		}
		cmd := exec.Command("go", "mod", "download", "-json", src.module)
		cmd.Dir = os.TempDir() // outside this module: nothing is added to go.mod
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go mod download %s: %w", src.module, err)
		}
		var mod struct{ Dir, Error string }
		if err := json.Unmarshal(out, &mod); err != nil || mod.Error != "" || mod.Dir == "" {
			return nil, fmt.Errorf("go mod download %s: %s%v", src.module, mod.Error, err)
		}
		matches, err := filepath.Glob(filepath.Join(mod.Dir, src.dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		for _, f := range matches {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if bytes.Contains(b, []byte("kind: CustomResourceDefinition")) {
				files = append(files, f)
			}
		}
	}
	return files, nil
}

// apiServerMinor is the minor version of the kube-apiserver envtest starts
// (KUBEBUILDER_ASSETS), from its --version. Unset, Assets builds the
// newest, which serves every CRD at its pinned version.
func apiServerMinor() (int, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return gatewayAPINewFrom, nil
	}
	bin := filepath.Join(dir, "kube-apiserver")
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", bin, err)
	}
	// "Kubernetes v1.35.8"
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), " v1.")
	minor, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return 0, fmt.Errorf("%s --version: no minor version in %q", bin, out)
	}
	return minor, nil
}
