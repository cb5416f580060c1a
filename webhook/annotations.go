package webhook

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/go-git/go-git/v5/plumbing"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Workspace is what the annotations of one Deployment ask for, validated.
type Workspace struct {
	RepoURL   string // normalized: https://host/owner/name.git
	RepoName  string // the clone's directory name
	Branch    string // empty: the remote's default
	Secret    string
	Claim     string
	Container string // empty until the container is chosen
}

// ClonePath is where the repository lives on the claim.
func (w Workspace) ClonePath() string { return WorkspaceRoot + "/" + w.RepoName }

// AnnotationError is a denial: it names the annotation, the (redacted) value
// and the fix.
type AnnotationError struct {
	Key, Value, Problem, Fix string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("annotation %s: %q %s; %s", e.Key, e.Value, e.Problem, e.Fix)
}

var (
	repoSegment  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	gitTransport = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`)
	scpLike      = regexp.MustCompile(`^[^/]+@[^/:]+:`)
)

const repoFix = "use owner/name (GitHub) or https://host/owner/name[.git]"

// ParseWorkspace validates the annotations of d against s. Every error is an
// *AnnotationError.
func ParseWorkspace(d *appsv1.Deployment, s Settings) (Workspace, error) {
	a := d.Annotations
	w := Workspace{Secret: s.DefaultSecret, Claim: d.Name}
	var err error
	if w.RepoURL, w.RepoName, err = ParseRepo(a[AnnotationRepo], s.AllowedGitHosts); err != nil {
		return w, err
	}
	if b, ok := a[AnnotationBranch]; ok {
		if err := ValidateBranch(b); err != nil {
			return w, err
		}
		w.Branch = b
	}
	for _, n := range []struct {
		key       string
		target    *string
		subdomain bool
		fix       string
	}{
		{AnnotationSecret, &w.Secret, true, "name a Secret in this namespace (DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"},
		{AnnotationClaim, &w.Claim, true, "name a PersistentVolumeClaim in this namespace (DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"},
		{AnnotationContainer, &w.Container, false, "name a container of the pod template (DNS-1123 label: lowercase letters, digits and '-')"},
	} {
		v, ok := a[n.key]
		if !ok {
			continue
		}
		if msgs := validateName(v, n.subdomain); len(msgs) > 0 {
			return w, &AnnotationError{n.key, redact(v), "is not a valid name (" + strings.Join(msgs, "; ") + ")", n.fix}
		}
		*n.target = v
	}
	return w, nil
}

func validateName(v string, subdomain bool) []string {
	if subdomain {
		return validation.IsDNS1123Subdomain(v)
	}
	return validation.IsDNS1123Label(v)
}

// ParseRepo validates a repo annotation value against the allowed hosts and
// returns the normalized https URL and the repository's name.
func ParseRepo(v string, allowed []string) (string, string, error) {
	bad := func(problem, fix string) (string, string, error) {
		return "", "", &AnnotationError{AnnotationRepo, redact(v), problem, fix}
	}
	switch {
	case v == "":
		return bad("is missing or empty", repoFix)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return bad("contains whitespace or control characters", repoFix)
	case strings.HasPrefix(v, "-"):
		return bad("starts with '-' (git would read it as an option)", repoFix)
	case gitTransport.MatchString(v):
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
		host, path = strings.ToLower(u.Host), u.Path
	} else if scpLike.MatchString(v) {
		return bad("is an ssh (scp-style) address", "only https is allowed; "+repoFix)
	}
	segs := strings.Split(strings.TrimSuffix(strings.TrimPrefix(path, "/"), ".git"), "/")
	if slices.Contains(segs, "..") || slices.Contains(segs, ".") {
		return bad("has a '.' or '..' path segment", repoFix)
	}
	if len(segs) != 2 || !repoSegment.MatchString(segs[0]) || !repoSegment.MatchString(segs[1]) {
		return bad("is not owner/name", repoFix)
	}
	if !slices.Contains(allowed, host) {
		return bad("is on host "+host+", which is not allowed", "use a repo on "+strings.Join(allowed, ", ")+", or add the host to the injector's --allowed-git-hosts")
	}
	return "https://" + host + "/" + segs[0] + "/" + segs[1] + ".git", segs[1], nil
}

// ValidateBranch applies git's ref rules to refs/heads/<b>, plus a ban on a
// leading '-' that git check-ref-format --branch also refuses.
func ValidateBranch(b string) error {
	if b == "" || strings.HasPrefix(b, "-") || strings.ContainsAny(b, " \t\n") || plumbing.ReferenceName("refs/heads/"+b).Validate() != nil {
		return &AnnotationError{AnnotationBranch, redact(b), "is not a valid git branch name",
			"give a branch like main or release/1.2 (no spaces, '..', '~^:?*[\\', leading '-' or '/', trailing '.lock'), or remove the annotation to use the remote's default branch"}
	}
	return nil
}

// redact hides credentials and query strings before a value reaches a
// message or log.
func redact(v string) string {
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		v = v[:i] + "?REDACTED"
	}
	if scheme, rest, ok := strings.Cut(v, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 && !strings.Contains(rest[:at], "/") {
			v = scheme + "://REDACTED@" + rest[at+1:]
		}
	}
	const max = 200
	if len(v) > max {
		v = v[:max] + "..."
	}
	return v
}

// unknownKeyWarnings names each annotation under Prefix that is not part of
// the contract, with the nearest valid key.
func unknownKeyWarnings(annotations map[string]string) []string {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, Prefix) && k != AnnotationInjected && !slices.Contains(userAnnotations, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var warnings []string
	for _, k := range keys {
		near := nearest(k, userAnnotations)
		warnings = append(warnings, fmt.Sprintf("unknown annotation %s is ignored; did you mean %s?", k, near))
	}
	return warnings
}

func nearest(k string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := levenshtein(k, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
