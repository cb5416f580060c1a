package seed

import (
	"bytes"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/plumbing/format/config"
)

// cloneMarker is the file the seed writes beside a clone it finished
// (".<name>.seed-clone" in the clone's parent, holding the URL it cloned).
// From then on the directory is the user's: whatever they do in it, the
// seed leaves it as it is. It sits outside the clone, so no git operation
// touches it and the restart never has to read the user's repository.
func cloneMarker(ws string) string {
	return filepath.Join(filepath.Dir(ws), "."+filepath.Base(ws)+".seed-clone")
}

// inspectWorkspace reports whether ws holds the user's clone (the seed
// then leaves it alone) or nothing (the seed clones). It fails with
// ExitWorkspace only for content the seed did not make that is not a git
// repository: that may be unpushed work, and is never deleted. It reads
// no git object and no ref: the repository may be in any state git allows.
// A symlink to a directory is the user's choice: the rules apply to the
// directory it leads to.
func inspectWorkspace(ws, url string, report func(string, ...any)) (bool, error) {
	fi, err := os.Lstat(ws)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, diskError(err, "inspect %s", ws)
	}
	resolve := fmt.Sprintf("nothing was deleted; move it away (or delete it, once nothing in it is needed) so the next start clones %s, or set annotation %s to the repository it holds", url, contract.AnnotationRepo)
	symlink := fi.Mode()&os.ModeSymlink != 0
	if symlink {
		if fi, err = os.Stat(ws); err != nil {
			return false, fail(ExitWorkspace, nil, "%s is a symlink that leads nowhere (%v); %s", ws, err, resolve)
		}
	}
	if !fi.IsDir() {
		what := "a file"
		if symlink {
			what = "a symlink to a file"
		}
		return false, fail(ExitWorkspace, nil, "%s is %s, not a git repository; %s", ws, what, resolve)
	}
	entries, err := os.ReadDir(ws)
	if err != nil {
		return false, diskError(err, "read %s", ws)
	}
	if len(entries) == 0 {
		if symlink { // the clone's rename would replace the symlink, not fill its directory
			return false, fail(ExitWorkspace, nil, "%s is a symlink to an empty directory; the seed clones only into a real directory: replace the symlink with the directory, or clone into it yourself", ws)
		}
		return false, nil // nothing to lose: the clone replaces it
	}
	if _, err := os.Lstat(filepath.Join(ws, git.GitDirName)); err == nil {
		// A clone the seed finished, or one made before it kept a marker.
		report("repository present at %s, nothing to clone%s", ws, originNote(ws, url))
		adoptClone(ws, url, report)
		return true, nil
	}
	if cloned, ok := markerNote(ws, url); ok {
		report("repository present at %s, nothing to clone; it holds no %s any more (%s); left as it is", ws, git.GitDirName, cloned)
		return true, nil
	}
	return false, fail(ExitWorkspace, nil, "%s holds %d entries but is not a git repository; %s", ws, len(entries), resolve)
}

// adoptClone writes the marker beside a clone made before the seed kept
// one, so the clone stays the user's once they delete its .git. Best
// effort: the clone is there either way.
func adoptClone(ws, url string, report func(string, ...any)) {
	marker := cloneMarker(ws)
	if _, err := os.Lstat(marker); !errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := writeAtomic(marker, []byte(url+"\n")); err != nil {
		report("could not mark %s as the user's clone (%v); it is left as it is", ws, err)
	}
}

// markerNote says what the marker beside ws records, and whether there is
// one. Its content is shown only when it is a repository URL on the
// annotation's host: the marker may be anything the user put there.
func markerNote(ws, url string) (string, bool) {
	marker := cloneMarker(ws)
	if _, err := os.Lstat(marker); err != nil {
		return "", false
	}
	note := "the seed's marker " + marker + " is present"
	content, err := readRegular(marker, markerLimit)
	if err != nil {
		return note, true
	}
	cloned := strings.TrimSpace(string(content))
	host := ""
	if u, err := neturl.Parse(url); err == nil {
		host = u.Host
	}
	if _, err := contract.ParseRepo(cloned, []string{host}); err != nil {
		return note, true
	}
	return "the seed cloned " + cloned + " into it", true
}

// originNote says, best effort, where the clone's origin points when that
// is not the annotation's repository. Nothing it finds changes the outcome.
func originNote(ws, url string) string {
	content, err := readRegular(filepath.Join(ws, git.GitDirName, "config"), configLimit)
	if err != nil {
		return "" // a gitfile (worktree, submodule), no config or not a plain file: nothing to say
	}
	cfg := gitconfig.New()
	if err := gitconfig.NewDecoder(bytes.NewReader(content)).Decode(cfg); err != nil {
		return fmt.Sprintf("; its %s/config could not be read (%v); left as it is", git.GitDirName, err)
	}
	origin := cfg.Section("remote").Subsection("origin").Option("url")
	switch {
	case origin == "":
		return fmt.Sprintf("; it has no remote origin (the annotation names %s); left as it is", url)
	case !sameRepo(origin, url):
		return fmt.Sprintf("; origin now points at %s (the annotation names %s); left as it is", contract.Redact(origin), url)
	}
	return ""
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
