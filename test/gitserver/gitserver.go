// Package gitserver is a real git smart-HTTP server for tests, benchmarks
// and the demo: `git http-backend` behind net/http/cgi on an HTTPS server on
// 127.0.0.1 (or the address StartWithOwnCAAt is given), with basic auth and
// faults on demand.
package gitserver

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/angryninja/opencode-injector/contract"
)

// Fault makes the server misbehave while it sends a pack.
type Fault int32

const (
	FaultNone  Fault = iota
	FaultAbort       // drop the connection in the middle of the pack
	FaultStall       // stop sending in the middle of the pack, keep the connection open
	FaultSlow        // send the pack slowly but steadily: SlowChunk bytes every SlowPause
)

// The pace of FaultSlow: 320 KiB/s, with no pause longer than SlowPause.
const (
	SlowChunk = 32 << 10
	SlowPause = 100 * time.Millisecond
)

// Server serves the bare repositories under Root as https://Host/<path>.
type Server struct {
	Root   string // directory of bare repositories, owner/name.git
	URL    string // https://127.0.0.1:port, or the address it listens on
	Host   string // 127.0.0.1:port, likewise
	CAFile string // PEM of the server's certificate, for SSL_CERT_FILE
	Token  string // the password basic auth requires

	requests    atomic.Int64
	connections atomic.Int64
	packBytes   atomic.Int64
	fault       atomic.Int32
	srv         *httptest.Server
	stop        chan struct{}
}

// Start serves root with basic auth (User, token); caDir receives the CA file.
func Start(root, token, caDir string) (*Server, error) { return start(root, token, caDir, nil) }

// start serves with own's certificate, or httptest's when own is nil.
func start(root, token, caDir string, own *ownCA) (*Server, error) {
	backend, err := backendPath()
	if err != nil {
		return nil, err
	}
	s := &Server{Root: root, Token: token, stop: make(chan struct{})}
	cgiHandler := &cgi.Handler{
		Path:   backend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		Stderr: io.Discard, // "Not a git repository" for the not-found tests
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if user, pass, ok := r.BasicAuth(); !ok || user != contract.TokenUser || pass != s.Token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			w = &countingWriter{ResponseWriter: w, n: &s.packBytes}
			if f := Fault(s.fault.Load()); f != FaultNone {
				w = &faultyWriter{ResponseWriter: w, fault: f, stop: s.stop, req: r}
			}
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	// Counted as they open, so a client that fails the TLS handshake (and
	// never sends a request) counts too.
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.connections.Add(1)
		}
	}
	caFile, caDER := "git-server-ca.pem", func() []byte { return s.srv.Certificate().Raw }
	if own != nil {
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{own.serving}}
		caFile, caDER = own.name+"-ca.pem", func() []byte { return own.ca }
		l, err := net.Listen("tcp", own.listen)
		if err != nil {
			return nil, fmt.Errorf("git server: listen on %s: %w", own.listen, err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	s.srv.StartTLS()
	u, _ := url.Parse(s.srv.URL)
	s.URL, s.Host = s.srv.URL, u.Host
	s.CAFile = filepath.Join(caDir, caFile)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER()})
	if err := os.WriteFile(s.CAFile, pemBytes, 0o644); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// RepoURL is the https URL of owner/name.
func (s *Server) RepoURL(owner, name string) string { return s.URL + "/" + owner + "/" + name + ".git" }

// Requests is how many HTTP requests the server has received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Connections is how many connections clients have opened to the server,
// TLS handshakes that failed included.
func (s *Server) Connections() int64 { return s.connections.Load() }

// PackBytes is how many bytes the server has sent in answer to fetches
// (git-upload-pack), packs included.
func (s *Server) PackBytes() int64 { return s.packBytes.Load() }

// SetFault changes how the next packs are sent.
func (s *Server) SetFault(f Fault) { s.fault.Store(int32(f)) }

// Close stops the server and releases stalled requests.
func (s *Server) Close() {
	close(s.stop)
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// countingWriter counts what reaches the connection.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() {
	if fl, ok := c.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// faultyWriter passes the first bytes of a pack through, then aborts or
// stalls.
type faultyWriter struct {
	http.ResponseWriter
	fault   Fault
	stop    chan struct{}
	req     *http.Request
	written int
}

// faultAfterBytes is where a fault strikes: inside the pack of even the
// smallest test repository.
const faultAfterBytes = 1024

func (f *faultyWriter) Write(b []byte) (int, error) {
	if f.fault == FaultSlow {
		return f.writeSlowly(b)
	}
	if room := faultAfterBytes - f.written; len(b) > room {
		if room > 0 {
			n, _ := f.ResponseWriter.Write(b[:room])
			f.written += n
		}
		if fl, ok := f.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		if f.fault == FaultStall {
			select {
			case <-f.req.Context().Done():
			case <-f.stop:
			}
		}
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	n, err := f.ResponseWriter.Write(b)
	f.written += n
	return n, err
}

// writeSlowly sends b in chunks of SlowChunk, each flushed, SlowPause apart.
func (f *faultyWriter) writeSlowly(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), SlowChunk)]
		n, err := f.ResponseWriter.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		if fl, ok := f.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		b = b[n:]
		select {
		case <-time.After(SlowPause):
		case <-f.req.Context().Done():
			return written, f.req.Context().Err()
		case <-f.stop:
			return written, io.ErrClosedPipe
		}
	}
	return written, nil
}

func backendPath() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("git --exec-path (is git installed?): %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("git http-backend: %w", err)
	}
	return p, nil
}

// Git runs git with a clean configuration and fixed identity and dates, so
// generated repositories are reproducible.
func Git(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+dir,
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// MakeRepo creates the bare repository root/owner/name.git with files
// files (spread over directories) and commits commits on branch main, plus
// a branch "other" with one more commit.
func MakeRepo(root, owner, name string, files, commits int) error {
	work, err := os.MkdirTemp("", "gitserver-work-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := Git(work, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	for c := 0; c < commits; c++ {
		for f := 0; f < files; f++ {
			// The first commit writes every file, later ones change a slice of them.
			if c > 0 && f%commits != c {
				continue
			}
			p := filepath.Join(work, "dir"+strconv.Itoa(f%50), "file"+strconv.Itoa(f)+".txt")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			content := fmt.Sprintf("file %d, commit %d\n%s", f, c, strings.Repeat("opencode workspace line\n", 1+f%20))
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				return err
			}
		}
		if err := Git(work, "add", "-A"); err != nil {
			return err
		}
		if err := Git(work, "commit", "-q", "-m", "commit "+strconv.Itoa(c)); err != nil {
			return err
		}
	}
	if err := Git(work, "checkout", "-q", "-b", "other"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "OTHER"), []byte("other branch\n"), 0o644); err != nil {
		return err
	}
	if err := Git(work, "add", "-A"); err != nil {
		return err
	}
	if err := Git(work, "commit", "-q", "-m", "other"); err != nil {
		return err
	}
	if err := Git(work, "checkout", "-q", "main"); err != nil {
		return err
	}
	bare := filepath.Join(root, owner, name+".git")
	if err := os.MkdirAll(filepath.Dir(bare), 0o755); err != nil {
		return err
	}
	return Git(root, "clone", "-q", "--bare", work, bare)
}
