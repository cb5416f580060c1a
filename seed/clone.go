package seed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ensureClone makes sure the workspace holds a clone of url: it clones when
// the path is absent, and leaves whatever the user made of the clone as it
// is, touching no network.
func ensureClone(ctx context.Context, url string, cfg Config, trusted *trust, report func(string, ...any)) error {
	ws := filepath.Clean(cfg.Workspace)
	if err := removeStagingLeftovers(ws, report); err != nil {
		return err
	}
	present, err := inspectWorkspace(ws, url, report)
	if err != nil || present {
		return err
	}
	return clone(ctx, url, ws, cfg, trusted, report)
}

// clone fetches url into a staging directory and renames it into place, so
// ws only ever holds a complete clone, then marks the clone as finished.
func clone(ctx context.Context, url, ws string, cfg Config, trusted *trust, report func(string, ...any)) error {
	st, err := newStage(ws)
	if err != nil {
		return err
	}
	start := time.Now()
	stalled := &atomic.Bool{}
	large := &atomic.Pointer[tooLarge]{}
	client.InstallProtocol("https", githttp.NewClient(newHTTPClient(cfg.StallTimeout, stalled, trusted)))
	opts := &git.CloneOptions{URL: url, NoCheckout: true} // checkoutHead checks it out
	if cfg.Token != "" {
		opts.Auth = &githttp.BasicAuth{Username: contract.TokenUser, Password: cfg.Token}
	}
	if cfg.Branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(cfg.Branch)
	}
	var b budget
	if cfg.MemoryLimit > 0 {
		b = newBudget(cfg.MemoryLimit)
		report("memory limit %d MiB: the seed keeps to %d MiB", ceilMiB(b.limit), b.limit*memoryShare/100/mib)
	}
	indexed, err := cloneInto(ctx, st.clone, opts, b, large.Store)
	if err != nil {
		st.discard()
		if tl := large.Load(); tl != nil {
			return memoryError(tl, url)
		}
		return classify(err, url, cfg, stalled.Load())
	}
	checkedOut := time.Now()
	if err := st.commit(); err != nil {
		return err
	}
	if err := writeAtomic(cloneMarker(ws), []byte(url+"\n")); err != nil {
		return err
	}
	branch := cfg.Branch
	if branch == "" {
		branch = "the default branch"
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	report("cloned %s (%s) into %s in %s (pack received and indexed in %s, checked out in %s, flushed to disk in %s)",
		url, branch, ws, ms(time.Since(start)), ms(indexed.Sub(start)), ms(checkedOut.Sub(indexed)), ms(time.Since(checkedOut)))
	return nil
}

// The clone's memory: go-git's object cache (default 96 MiB) kept small,
// and objects above largeObject streamed from the pack at checkout instead
// of being read whole into memory.
const (
	objectCache = 8 * cache.MiByte
	largeObject = 1 << 20
)

// cloneInto is git.PlainCloneContext with the pack files kept open (the
// checkout reads every object from them, and reopening the pack for each
// one made the clone three times slower than git's), a small object cache,
// large objects streamed, the pack indexed by packWriter, within the
// budget (found hears of the delta that does not fit), and the work tree
// written by checkoutHead instead of go-git's Worktree.Reset.
func cloneInto(ctx context.Context, dir string, opts *git.CloneOptions, b budget, found func(*tooLarge)) (indexed time.Time, err error) {
	wt := osfs.New(dir)
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return indexed, err
	}
	fsStorage := filesystem.NewStorageWithOptions(dot, cache.NewObjectLRU(objectCache), filesystem.Options{
		KeepDescriptors:      true,
		LargeObjectThreshold: largeObject,
	})
	st := &budgetStorage{Storage: fsStorage, budget: b, found: found}
	repo, err := git.CloneContext(ctx, st, wt, opts)
	if err == nil {
		err = checkoutHead(ctx, repo, dir)
	}
	if closeErr := fsStorage.Close(); err == nil {
		err = closeErr
	}
	return st.indexed, err
}

// syncAll flushes dir's filesystem (every file and directory of the clone,
// in one syncfs rather than an fsync per file), then dir and its parent.
func syncAll(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = syncFilesystem(int(d.Fd()))
	if syncErr := d.Sync(); err == nil {
		err = syncErr
	}
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// classify turns a clone error into an exit code and a message that says
// what to check.
func classify(err error, url string, cfg Config, stalled bool) error {
	switch {
	case isDiskError(err):
		return diskError(err, "clone %s", url)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		hint := "set key GITHUB_TOKEN in the workspace Secret to a token that can read it"
		if cfg.Token != "" {
			hint = "the Secret's GITHUB_TOKEN was refused: check it is valid, not expired, and can read the repository"
		}
		return fail(ExitAuth, err, "clone %s: authentication failed; %s", url, hint)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fail(ExitNotFound, err, "clone %s: repository not found; check annotation %s, and that the token can read it (GitHub answers 404 to a token without access)", url, contract.AnnotationRepo)
	case errors.Is(err, plumbing.ErrReferenceNotFound), strings.Contains(err.Error(), "couldn't find remote ref"):
		return fail(ExitNotFound, err, "clone %s: branch %q not found; fix or remove annotation %s", url, cfg.Branch, contract.AnnotationBranch)
	case errors.Is(err, errBadEntry):
		return fail(ExitUsage, err, "clone %s: the repository's tree cannot be checked out; rename the entry in the repository, or set annotation %s to another one", url, contract.AnnotationRepo)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fail(ExitNotFound, err, "clone %s: the repository is empty; push a first commit", url)
	case stalled:
		return fail(ExitNetwork, err, "clone %s: the transfer stalled (nothing received for %s); the next start retries", url, cfg.StallTimeout)
	case errors.As(err, new(x509.UnknownAuthorityError)), strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return fail(ExitNetwork, err, "clone %s: the host's certificate is signed by a CA the seed does not trust; for a self-hosted host, set annotation %s to a ConfigMap whose key %s holds its CA", url, contract.AnnotationCABundle, contract.CABundleKey)
	default:
		return fail(ExitNetwork, err, "clone %s: network error; the next start retries", url)
	}
}

func isDiskError(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EACCES, syscall.EPERM, syscall.EROFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func diskError(err error, format string, args ...any) error {
	hint := "check the claim"
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		hint = "the claim is full: expand it"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		hint = fmt.Sprintf("permission denied for uid %d: set the pod's fsGroup, or runAsUser to the owner of the claim's files", os.Getuid())
	}
	return fail(ExitDisk, err, "%s (%s)", fmt.Sprintf(format, args...), hint)
}

// newHTTPClient gives up on connections and transfers that go quiet for
// stall, and sets *stalled when it does. It trusts the system roots, plus
// the CA when one is given.
func newHTTPClient(stall time.Duration, stalled *atomic.Bool, trusted *trust) *http.Client {
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: stall, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   stall,
		ResponseHeaderTimeout: stall,
		ForceAttemptHTTP2:     true,
		IdleConnTimeout:       90 * time.Second,
	}
	if trusted != nil {
		base.TLSClientConfig = &tls.Config{RootCAs: trusted.pool}
	}
	return &http.Client{Transport: &stallTransport{base: base, idle: stall, stalled: stalled}}
}

type stallTransport struct {
	base    http.RoundTripper
	idle    time.Duration
	stalled *atomic.Bool
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	timer := time.AfterFunc(t.idle, func() { t.stalled.Store(true); cancel() })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timer.Stop()
		cancel()
		return nil, err
	}
	timer.Reset(t.idle)
	resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, idle: t.idle, cancel: cancel}
	return resp, nil
}

// idleBody pushes the stall deadline out on every read.
type idleBody struct {
	io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	cancel context.CancelFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err != nil:
		b.timer.Stop() // all received: what go-git does next is not a stall
	case n > 0:
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}
