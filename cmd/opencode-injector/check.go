package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/angryninja/opencode-injector/seed"
)

// checkCmd runs `opencode-injector check`: it reads the cluster with the
// user's kubeconfig and prints one line per check, the way `linkerd check`
// and `cmctl check api` do. It only reads; it exits 1 when a check fails.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{}
	fs.StringVar(&rules.ExplicitPath, "kubeconfig", "", "the kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&overrides.CurrentContext, "context", "", "the kubeconfig context to use (default: its current context)")
	o := checkOptions{}
	fs.DurationVar(&o.expiryMargin, "expiry-margin", 7*24*time.Hour, "fail when the serving certificate expires sooner than this (cert-manager renews it 30 days ahead)")
	fs.StringVar(&o.probeNamespace, "probe-namespace", "", "the namespace of the dry-run probe that tests the API server's call to the webhook (default: a workspace's, else the first the webhook covers)")
	timeout := fs.Duration("timeout", time.Minute, "give up reading the cluster after this long")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	// controller-runtime's client logs the API server's warnings.
	ctrl.SetLogger(zap.New(zap.WriteTo(stderr)))
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "check: load the kubeconfig: %v\n", err)
		return 2
	}
	cfg.Timeout = *timeout
	// In the image (empty base) the API server's public CA is found only
	// among the compiled-in roots.
	seed.UseCompiledInRoots()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "check: connect to %s: %v\n", cfg.Host, err)
		return 2
	}
	version, err := dc.ServerVersion()
	if err != nil {
		fmt.Fprintf(stderr, "check: reach the API server %s: %v\n", cfg.Host, err)
		return 2
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "check: connect to %s: %v\n", cfg.Host, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	fmt.Fprintf(stdout, "cluster %s (Kubernetes %s)\n", cfg.Host, version.GitVersion)
	r := &report{out: stdout}
	found := checkInjector(ctx, c, r, o)
	checkWorkspaces(ctx, c, r, found)
	fmt.Fprintf(stdout, "\n%d checks, %d failed\n", r.checks, r.failed)
	if r.failed > 0 {
		return 1
	}
	return 0
}

type checkOptions struct {
	expiryMargin   time.Duration
	probeNamespace string
}

// report prints one line per check: ✓ what: detail, or ✗ what: reason;
// fix: what to do.
type report struct {
	out            io.Writer
	checks, failed int
}

func (r *report) section(title string) { fmt.Fprintf(r.out, "\n%s\n", title) }

func (r *report) pass(what, detail string) {
	r.checks++
	fmt.Fprintf(r.out, "  ✓ %s: %s\n", what, detail)
}

func (r *report) fail(what, reason, fix string) {
	r.checks++
	r.failed++
	fmt.Fprintf(r.out, "  ✗ %s: %s; fix: %s\n", what, reason, fix)
}
