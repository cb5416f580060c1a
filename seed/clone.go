package seed

import (
	"context"
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

// tempPrefix names the temporary sibling a clone is made in; a clone
// killed midway leaves one, which the next start removes.
func tempPrefix(name string) string { return "." + name + ".seed-" }

// ensureClone makes sure the workspace holds a clone of url: it clones when
// the path is absent, does nothing (and touches no network) when the clone
// is there, and refuses when anything else is there.
func ensureClone(ctx context.Context, url string, cfg Config, report func(string, ...any)) error {
	ws := filepath.Clean(cfg.Workspace)
	parent, name := filepath.Dir(ws), filepath.Base(ws)
	leftovers, _ := filepath.Glob(filepath.Join(parent, tempPrefix(name)+"*"))
	for _, l := range leftovers {
		if err := os.RemoveAll(l); err != nil {
			return diskError(err, "remove %s, left by an interrupted clone", l)
		}
		report("removed %s, left by an interrupted clone", l)
	}
	present, err := inspect(ws, url)
	if err != nil {
		return err
	}
	if present {
		report("repository present at %s, nothing to clone", ws)
		return nil
	}
	return clone(ctx, url, ws, cfg, report)
}

// inspect reports whether ws holds a clone of url, and fails with
// ExitWorkspace when it holds anything else: that may be unpushed work, and
// is never deleted.
func inspect(ws, url string) (bool, error) {
	fi, err := os.Lstat(ws)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, diskError(err, "inspect %s", ws)
	}
	resolve := fmt.Sprintf("nothing was deleted; move it away (or delete it, once nothing in it is needed) so the next start clones %s, or set annotation %s to the repository it holds", url, contract.AnnotationRepo)
	if !fi.IsDir() {
		return false, fail(ExitWorkspace, nil, "%s is a file, not a git repository; %s", ws, resolve)
	}
	repo, err := git.PlainOpen(ws)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		entries, readErr := os.ReadDir(ws)
		if readErr != nil {
			return false, diskError(readErr, "read %s", ws)
		}
		if len(entries) == 0 { // an empty directory holds nothing to lose
			if err := os.Remove(ws); err != nil {
				return false, diskError(err, "remove the empty directory %s", ws)
			}
			return false, nil
		}
		return false, fail(ExitWorkspace, nil, "%s holds %d entries but is not a git repository; %s", ws, len(entries), resolve)
	}
	if err != nil {
		return false, fail(ExitWorkspace, err, "%s is a damaged git repository (%s)", ws, resolve)
	}
	origin, err := repo.Remote(git.DefaultRemoteName)
	if err != nil || len(origin.Config().URLs) == 0 {
		return false, fail(ExitWorkspace, nil, "%s is a git repository without remote origin; %s", ws, resolve)
	}
	if got := origin.Config().URLs[0]; !sameRepo(got, url) {
		return false, fail(ExitWorkspace, nil, "%s is a clone of %s, not of %s; %s", ws, contract.Redact(got), url, resolve)
	}
	return true, nil
}

// sameRepo compares remote URLs by host and path, ignoring scheme, user,
// case and a .git suffix, so a remote the user switched to ssh still counts.
func sameRepo(a, b string) bool { return canonicalRemote(a) == canonicalRemote(b) }

func canonicalRemote(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if _, rest, ok := strings.Cut(u, "://"); ok {
		u = rest
	} else if host, path, ok := strings.Cut(u, ":"); ok { // scp-like user@host:path
		u = host + "/" + path
	}
	if at := strings.LastIndex(u, "@"); at >= 0 && at < strings.Index(u+"/", "/") {
		u = u[at+1:]
	}
	return strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
}

// clone fetches url into a temporary sibling of ws and renames it into
// place, so ws only ever holds a complete clone.
func clone(ctx context.Context, url, ws string, cfg Config, report func(string, ...any)) error {
	parent, name := filepath.Dir(ws), filepath.Base(ws)
	_, statErr := os.Stat(parent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return diskError(err, "create %s", parent)
	}
	tmp, err := os.MkdirTemp(parent, tempPrefix(name))
	if err != nil {
		return diskError(err, "create a temporary directory in %s", parent)
	}
	cleanup := func() {
		_ = os.RemoveAll(tmp)
		if statErr != nil {
			_ = os.Remove(parent) // created here; removed only while empty
		}
	}
	start := time.Now()
	stalled := &atomic.Bool{}
	client.InstallProtocol("https", githttp.NewClient(newHTTPClient(cfg.StallTimeout, stalled)))
	opts := &git.CloneOptions{URL: url}
	if cfg.Token != "" {
		opts.Auth = &githttp.BasicAuth{Username: contract.TokenUser, Password: cfg.Token}
	}
	if cfg.Branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(cfg.Branch)
	}
	if err := cloneInto(ctx, tmp, opts); err != nil {
		cleanup()
		return classify(err, url, cfg, stalled.Load())
	}
	if err := os.Rename(tmp, ws); err != nil {
		cleanup()
		return diskError(err, "move the clone into %s", ws)
	}
	branch := cfg.Branch
	if branch == "" {
		branch = "the default branch"
	}
	report("cloned %s (%s) into %s in %s", url, branch, ws, time.Since(start).Round(time.Millisecond))
	return nil
}

// cloneInto is git.PlainCloneContext with the pack files kept open: the
// checkout reads every object from them, and reopening the pack for each
// one made the clone three times slower than git's.
func cloneInto(ctx context.Context, dir string, opts *git.CloneOptions) error {
	wt := osfs.New(dir)
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return err
	}
	st := filesystem.NewStorageWithOptions(dot, cache.NewObjectLRUDefault(), filesystem.Options{KeepDescriptors: true})
	_, err = git.CloneContext(ctx, st, wt, opts)
	if closeErr := st.Close(); err == nil {
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
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fail(ExitNotFound, err, "clone %s: the repository is empty; push a first commit", url)
	case stalled:
		return fail(ExitNetwork, err, "clone %s: the transfer stalled (nothing received for %s); the next start retries", url, cfg.StallTimeout)
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
// stall, and sets *stalled when it does.
func newHTTPClient(stall time.Duration, stalled *atomic.Bool) *http.Client {
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: stall, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   stall,
		ResponseHeaderTimeout: stall,
		ForceAttemptHTTP2:     true,
		IdleConnTimeout:       90 * time.Second,
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
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}
