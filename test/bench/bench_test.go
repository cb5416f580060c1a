// Package bench measures the admission path as users feel it, each figure
// beside its baseline measured in the same run: the webhook server over TLS
// under load, and Deployment creates on a real API server. `make bench`
// runs it; the figures are in BENCHMARKS.md.
package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/test/testenv"
	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// startAPIServer starts kube-apiserver and etcd for one benchmark.
func startAPIServer(b *testing.B) (*envtest.Environment, *rest.Config, string) {
	b.Helper()
	root, err := testenv.Root()
	if err != nil {
		b.Fatal(err)
	}
	assets, err := testenv.Assets(root)
	if err != nil {
		b.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	return env, cfg, root
}

// servingCert writes a self-signed certificate for 127.0.0.1 into a new
// directory and returns the directory and the certificate's PEM.
func servingCert(b *testing.B) (string, []byte) {
	b.Helper()
	p := testenv.LoopbackServing(b, "127.0.0.1")
	dir := b.TempDir()
	for name, data := range p.TLSFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return dir, p.CertPEM
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func sortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

func fixture(b *testing.B, root string) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "test", "fixtures", "app-template", "flux.rendered.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

var benchSettings = injection.DefaultSettings(injection.ImageRepository + ":v0.0.0-bench")

// The in-process managers and clients log nothing during a measurement.
func init() { logf.SetLogger(logr.Discard()) }
