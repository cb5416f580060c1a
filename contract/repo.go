package contract

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-git/go-git/v5/plumbing"
	"k8s.io/apimachinery/pkg/util/validation"
)

// AnnotationError is a denial: it names the annotation, the (redacted) value
// and the fix.
type AnnotationError struct {
	Key, Value, Problem, Fix string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("annotation %s: %q %s; %s", e.Key, e.Value, e.Problem, e.Fix)
}

// Repo is a validated repository on an allowed host.
type Repo struct {
	URL   string // normalized: https://host/owner/name.git
	Host  string
	Owner string
	Name  string
}

// ClonePath is where the repository lives on the claim: one directory per
// host, owner and name, so a changed repo annotation clones beside the old
// clone. Lowercase, as GitHub's names are: a change of case is the same
// repository.
func (r Repo) ClonePath() string {
	return WorkspaceRoot + "/" + r.Host + "/" + strings.ToLower(r.Owner) + "/" + strings.ToLower(r.Name)
}

// maxRepoSegment is GitHub's limit on a repository name; owners are shorter.
const maxRepoSegment = 100

var scpLike = regexp.MustCompile(`^[^/]+@[^/:]+:`)

// isRepoSegment reports whether s matches ^[A-Za-z0-9_][A-Za-z0-9_.-]*$,
// an owner or repository name as GitHub allows them. Loops, not regular
// expressions: every review of a workspace checks two.
func isRepoSegment(s string) bool {
	return s != "" && s[0] != '.' && s[0] != '-' && onlyBytes(s, func(c byte) bool { return isASCIIAlnum(c) || c == '_' || c == '.' || c == '-' })
}

// hasRemoteHelper reports whether v starts like ^[A-Za-z][A-Za-z0-9+.-]*::,
// git's <transport>::<address> syntax for a remote helper.
func hasRemoteHelper(v string) bool {
	scheme, _, found := strings.Cut(v, "::")
	return found && scheme != "" && isASCIIAlnum(scheme[0]) && scheme[0] > '9' &&
		onlyBytes(scheme, func(c byte) bool { return isASCIIAlnum(c) || c == '+' || c == '.' || c == '-' })
}

func onlyBytes(s string, ok func(byte) bool) bool {
	for i := range len(s) {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

const (
	repoFix        = "use owner/name (GitHub) or https://host/owner/name[.git]"
	repoSegmentFix = "owner and name are 1 to 100 letters, digits, '-', '_' or '.', and start with a letter, digit or '_' (the rules GitHub applies); " + repoFix
)

// ParseRepo validates a repo annotation value against the allowed hosts.
// Every error is an *AnnotationError with the value redacted.
func ParseRepo(v string, allowed []string) (Repo, error) {
	bad := func(problem, fix string) (Repo, error) {
		return Repo{}, &AnnotationError{AnnotationRepo, Redact(v), problem, fix}
	}
	switch {
	case v == "":
		return bad("is missing or empty", repoFix)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("contains whitespace or control characters", repoFix)
	case strings.IndexFunc(v, func(r rune) bool { return r > unicode.MaxASCII }) >= 0:
		return bad("contains non-ASCII characters (look-alikes of '/', '.' or letters are not allowed)", repoFix)
	case strings.HasPrefix(v, "-"):
		return bad("starts with '-' (git would read it as an option)", repoFix)
	case hasRemoteHelper(v):
		return bad("uses a git remote helper transport", "only https is allowed; "+repoFix)
	}
	host, path := "github.com", v
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return bad("is not a URL", repoFix)
		}
		if u.Scheme != "https" {
			return bad("uses scheme "+u.Scheme+"://", "only https is allowed (the token must never travel in clear text or over ssh); "+repoFix)
		}
		if u.User != nil {
			return bad("carries credentials in the URL", "remove them and put the token in the Secret's "+SecretKeyToken+" key")
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(v, "?#") {
			return bad("has a query string or fragment", repoFix)
		}
		host, path = strings.ToLower(u.Host), strings.TrimPrefix(u.Path, "/")
	} else if strings.Contains(v, "@") {
		if scpLike.MatchString(v) {
			return bad("is an ssh (scp-style) address or carries credentials", "only https is allowed, and the token belongs in the Secret's "+SecretKeyToken+" key; "+repoFix)
		}
		return bad("carries credentials", "remove them and put the token in the Secret's "+SecretKeyToken+" key")
	} else if strings.ContainsAny(v, "?#") {
		return bad("has a query string or fragment", repoFix)
	} else if strings.HasPrefix(v, "/") {
		return bad("starts with '/'", repoFix)
	}
	segs := strings.Split(strings.TrimSuffix(path, ".git"), "/")
	if slices.Contains(segs, "..") || slices.Contains(segs, ".") {
		return bad("has a '.' or '..' path segment", repoFix)
	}
	if len(segs) != 2 {
		return bad("is not owner/name", repoFix)
	}
	for _, s := range segs {
		if len(s) > maxRepoSegment || !isRepoSegment(s) {
			return bad("is not a valid owner/name", repoSegmentFix)
		}
		if tokenLike.MatchString(s) {
			return bad("holds a token-like value (a GitHub or GitLab credential prefix)", "name the repository by owner/name only; the token belongs in the Secret's "+SecretKeyToken+" key")
		}
	}
	if !slices.Contains(allowed, host) {
		return bad("is on host "+host+", which is not allowed", "use a repo on "+strings.Join(allowed, ", ")+", or add the host to the injector's --allowed-git-hosts")
	}
	return Repo{URL: "https://" + host + "/" + segs[0] + "/" + segs[1] + ".git", Host: host, Owner: segs[0], Name: segs[1]}, nil
}

// ValidateBranch applies git's ref rules to refs/heads/<b>, plus the bans
// on a leading '-' and on HEAD that git check-ref-format --branch also
// applies (HEAD names no branch: the remote's default is asked by leaving
// the annotation out).
func ValidateBranch(b string) error {
	if b == "" || b == "HEAD" || strings.HasPrefix(b, "-") || strings.IndexFunc(b, func(r rune) bool { return unicode.IsSpace(r) || r > unicode.MaxASCII }) >= 0 ||
		plumbing.ReferenceName("refs/heads/"+b).Validate() != nil {
		return &AnnotationError{AnnotationBranch, Mask(b), "is not a valid git branch name",
			"give a branch like main or release/1.2 (ASCII, no spaces, '..', '~^:?*[\\', leading '-' or '/', trailing '.lock'), or remove the annotation to use the remote's default branch"}
	}
	if tokenLike.MatchString(b) {
		return &AnnotationError{AnnotationBranch, Mask(b), "holds a token-like value (a GitHub or GitLab credential prefix)",
			"give the branch's name; the token belongs in the Secret's " + SecretKeyToken + " key"}
	}
	return nil
}

// ParseHosts parses a comma-separated list of host or host:port, lowercased.
func ParseHosts(v string) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(v, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if !validHost(h) {
			return nil, fmt.Errorf("host %q: give a host name or host:port, without scheme or path", Redact(h))
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no host given")
	}
	return hosts, nil
}

// validHost tells whether h is a DNS name (or IPv4 address) with an
// optional port: it becomes a directory of the clone path, so '..', '.'
// and empty labels are refused.
func validHost(h string) bool {
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return false
		}
	}
	return len(validation.IsDNS1123Subdomain(name)) == 0
}

// maxQuoted bounds how much of a bad value a message repeats.
const maxQuoted = 200

// atSigns are '@' and what a parser or a reader might take for one.
var atSigns = []string{"@", "%40", "\uFF20", "\uFE6B"}

// tokenLike is a value with a known credential prefix (GitHub's and
// GitLab's personal, OAuth, app and refresh tokens), also percent-encoded
// (ghp%5F…), and what follows it. A bare 40-hex value is a commit, not a
// token.
var tokenLike = regexp.MustCompile(`(?i)(gh[pousr](_|%5F)|github(_|%5F)pat(_|%5F)|glpat(-|%2D))[A-Za-z0-9_%-]*`)

// HideTokens replaces every token-like value in a message with REDACTED.
// Every denial, warning, log line and Event that can carry a user's value
// goes through it.
func HideTokens(s string) string {
	return userinfo.ReplaceAllString(tokenLike.ReplaceAllString(s, "REDACTED"), "${1}REDACTED@")
}

// userinfo is a password in URL userinfo (user:password@, with or without
// a scheme) pasted where no URL belongs, such as a Secret or branch name.
// The password may hold '/', but not start with one (scheme://).
var userinfo = regexp.MustCompile(`(^|[\s"'(=/])[^\s"'/@:]+:[^\s"'/@][^\s"'@]*@`)

// Mask is a value where no URL credentials can be (a name, a size), fit for
// a message: token-like values hidden, its length bounded.
func Mask(v string) string {
	v = HideTokens(v)
	if len(v) > maxQuoted {
		v = strings.ToValidUTF8(v[:maxQuoted], "") + "..."
	}
	return v
}

// Redact is a value where URL credentials can be (a repository, a host, a
// remote's URL), fit for a message: everything before the last '@' (or a
// look-alike or escaped one: userinfo in URL or scp form, with or without a
// scheme) and everything from '?' or '#' is cut, then it is masked.
func Redact(v string) string {
	at, width := -1, 0
	lower := strings.ToLower(v)
	for _, sign := range atSigns {
		if i := strings.LastIndex(lower, strings.ToLower(sign)); i > at {
			at, width = i, len(sign)
		}
	}
	if at >= 0 {
		scheme := ""
		if s, _, ok := strings.Cut(v[:at], "://"); ok && !strings.ContainsAny(s, "?#") {
			scheme = s + "://"
		}
		v = scheme + "REDACTED@" + v[at+width:]
	}
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		v = v[:i] + "?REDACTED"
	}
	return Mask(v)
}
