// Package seed is what the opencode-seed init container does on every pod
// start: lay out HOME, clone the repository once, seed the Copilot login.
// Every path and value comes from env or flags, so it runs outside a pod too.
package seed

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/angryninja/opencode-injector/contract"
)

// Exit codes of `opencode-injector seed`.
const (
	ExitOK        = 0
	ExitUsage     = 2 // usage or configuration
	ExitAuth      = 3 // authentication or authorization (401/403)
	ExitNotFound  = 4 // repository or branch not found
	ExitNetwork   = 5 // network, DNS, TLS or timeout
	ExitDisk      = 6 // disk full or permission denied
	ExitWorkspace = 7 // the workspace path holds a file or other files, not a clone
	ExitMemory    = 8 // an object of the repository needs more memory than the limit allows
)

// Env names the seed reads besides the contract's OPENCODE_SEED_*.
const (
	EnvStallTimeout = "OPENCODE_SEED_STALL_TIMEOUT"
	defaultStall    = 60 * time.Second
)

// Config is everything one run needs.
type Config struct {
	Repo         string   // https URL (or owner/name) on an allowed host
	Branch       string   // empty: the remote's default
	Workspace    string   // where the clone lives
	AuthSource   string   // auth.json from the Secret; may be absent
	AuthTarget   string   // auth.json on the claim
	AllowedHosts []string // hosts the repo may come from and the token may go to
	Dirs         []string // HOME and the XDG directories to create
	Token        string   // GITHUB_TOKEN; never printed
	StallTimeout time.Duration
	MemoryLimit  int64  // the container's memory limit in bytes; 0: none
	CASource     string // PEM of a CA added to the system roots; empty: none
	CATarget     string // directory on the claim for the bundles git and OpenCode read
}

// Error is a failure with its exit code and a message that says what to do.
type Error struct {
	Code int
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func fail(code int, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Main runs `opencode-injector seed` and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintln(stderr, contract.HideTokens("seed: "+err.Error()))
		return ExitUsage
	}
	setMemoryLimit(cfg.MemoryLimit)
	UseCompiledInRoots()
	if os.Getenv("GOGC") == "" {
		// A short-lived process: more collection for a lower peak (200,000
		// objects: 120 MiB at 25, 134 MiB at 50, more at the default 100;
		// the time is lost in the noise of the checkout's disk writes).
		debug.SetGCPercent(25)
	}
	report := func(format string, args ...any) {
		fmt.Fprintln(stdout, redactToken("seed: "+fmt.Sprintf(format, args...), cfg.Token))
	}
	if err := Run(context.Background(), cfg, report); err != nil {
		code := ExitUsage
		var se *Error
		if errors.As(err, &se) {
			code = se.Code
		}
		fmt.Fprintln(stderr, redactToken("seed: "+err.Error(), cfg.Token))
		return code
	}
	return ExitOK
}

func parse(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := Config{Token: os.Getenv(contract.EnvToken)}
	env := os.Getenv
	fs.StringVar(&cfg.Repo, "repo", env(contract.EnvSeedRepo), "repository URL, https only (env "+contract.EnvSeedRepo+")")
	fs.StringVar(&cfg.Branch, "branch", env(contract.EnvSeedBranch), "branch of the first clone; empty: the remote's default (env "+contract.EnvSeedBranch+")")
	fs.StringVar(&cfg.Workspace, "workspace", env(contract.EnvSeedWorkspace), "path of the clone (env "+contract.EnvSeedWorkspace+")")
	fs.StringVar(&cfg.AuthSource, "auth-source", env(contract.EnvSeedAuthSource), "auth.json from the Secret, may be absent (env "+contract.EnvSeedAuthSource+")")
	fs.StringVar(&cfg.AuthTarget, "auth-target", env(contract.EnvSeedAuthTarget), "auth.json on the claim (env "+contract.EnvSeedAuthTarget+")")
	hosts := fs.String("allowed-git-hosts", envOr(contract.EnvSeedAllowedHosts, contract.DefaultAllowedGitHosts), "comma-separated hosts (host or host:port) the repo may come from (env "+contract.EnvSeedAllowedHosts+")")
	stall := envOr(EnvStallTimeout, defaultStall.String())
	stallFlag := fs.String("stall-timeout", stall, "give up when a transfer sends nothing for this long (env "+EnvStallTimeout+")")
	fs.StringVar(&cfg.CASource, "ca-source", env(contract.EnvSeedCASource), "PEM of a CA to trust besides the system roots (env "+contract.EnvSeedCASource+")")
	fs.StringVar(&cfg.CATarget, "ca-target", env(contract.EnvSeedCATarget), "directory where the CA and the system roots plus the CA are written, with --ca-source (env "+contract.EnvSeedCATarget+")")
	memFlag := fs.String("memory-limit", env(contract.EnvSeedMemoryLimit), "the container's memory limit, in bytes or like 256Mi; the seed keeps to 85% of it (env "+contract.EnvSeedMemoryLimit+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: opencode-injector seed [flags]\n\nThe token comes only from env "+contract.EnvToken+
			"; HOME and XDG_*_HOME from env name the directories to create.\nExit codes: 0 done, 2 usage, 3 authentication, 4 not found, 5 network or timeout, 6 disk or permission, 7 workspace holds a file or other files, not a clone, 8 not enough memory for the repository.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.StallTimeout, err = time.ParseDuration(*stallFlag); err != nil || cfg.StallTimeout <= 0 {
		return cfg, fmt.Errorf("--stall-timeout %q: give a positive duration like 60s", *stallFlag)
	}
	if cfg.MemoryLimit, err = parseMemoryLimit(*memFlag); err != nil {
		return cfg, fmt.Errorf("--memory-limit: %w", err)
	}
	if cfg.AllowedHosts, err = contract.ParseHosts(*hosts); err != nil {
		return cfg, fmt.Errorf("--allowed-git-hosts: %w", err)
	}
	for _, name := range []string{contract.EnvHome, contract.EnvXDGData, contract.EnvXDGConfig, contract.EnvXDGState, contract.EnvXDGCache} {
		if dir := env(name); dir != "" {
			cfg.Dirs = append(cfg.Dirs, dir)
		}
	}
	return cfg, nil
}

// Run makes sure the workspace holds the clone, lays out HOME and seeds
// auth.json. It reports what it did through report.
func Run(ctx context.Context, cfg Config, report func(string, ...any)) error {
	repo, err := contract.ParseRepo(cfg.Repo, cfg.AllowedHosts)
	if err != nil {
		return fail(ExitUsage, nil, "repo: %v", err)
	}
	if !filepath.IsAbs(cfg.Workspace) {
		return fail(ExitUsage, nil, "--workspace %q: give an absolute path", cfg.Workspace)
	}
	if err := checkBranch(cfg.Branch); err != nil {
		return fail(ExitUsage, nil, "--branch: %v", err)
	}
	if (cfg.CASource == "") != (cfg.CATarget == "") {
		return fail(ExitUsage, nil, "--ca-source and --ca-target go together")
	}
	trusted, err := loadTrust(cfg.CASource)
	if err != nil {
		return err
	}
	// The clone goes first: when it fails, the claim is left as it was.
	if err := ensureClone(ctx, repo.URL, cfg, trusted, report); err != nil {
		return err
	}
	if trusted != nil {
		if err := trusted.write(cfg.CATarget); err != nil {
			return err
		}
		report("CA bundle: %s trusted besides the system roots; written to %s", cfg.CASource, cfg.CATarget)
	}
	for _, dir := range cfg.Dirs {
		if err := ensureHomeDir(dir, report); err != nil {
			return err
		}
	}
	if cfg.AuthTarget != "" {
		outcome, err := SeedAuth(cfg.AuthSource, cfg.AuthTarget)
		if err != nil {
			return err
		}
		report("auth.json: %s", outcome)
	}
	return nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func checkBranch(b string) error {
	if b == "" {
		return nil
	}
	return contract.ValidateBranch(b)
}

// redactToken hides the token should any message ever carry it, and any
// token-like value.
func redactToken(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "REDACTED")
	}
	// A token pasted where none belongs (a repository's or branch's name)
	// would otherwise reach the Pod's status through the termination log.
	return contract.HideTokens(s)
}
