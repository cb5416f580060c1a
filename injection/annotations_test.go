package injection

import (
	"errors"
	"strings"
	"testing"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection/injectiontest"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func withAnnotations(a map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ws", Annotations: a}}
}

func TestParseWorkspaceAccepts(t *testing.T) {
	s := testSettings()
	s.AllowedGitHosts = []string{"github.com", "git.example.com:8443"}
	for _, tc := range []struct {
		repo, url, name string
	}{
		{"angryninja/k8s-cluster", "https://github.com/angryninja/k8s-cluster.git", "/data/workspace/github.com/angryninja/k8s-cluster"},
		{"https://github.com/angryninja/home-assistant-config.git", "https://github.com/angryninja/home-assistant-config.git", "/data/workspace/github.com/angryninja/home-assistant-config"},
		{"https://GitHub.com/a/b", "https://github.com/a/b.git", "/data/workspace/github.com/a/b"},
		{"https://git.example.com:8443/team/repo.name", "https://git.example.com:8443/team/repo.name.git", "/data/workspace/git.example.com:8443/team/repo.name"},
	} {
		w, err := ParseWorkspace(withAnnotations(map[string]string{contract.AnnotationRepo: tc.repo}), s)
		if err != nil {
			t.Errorf("%q: %v", tc.repo, err)
			continue
		}
		if w.Repo.URL != tc.url || w.ClonePath() != tc.name || w.Secret != DefaultSecretName || w.Claim != "ws" {
			t.Errorf("%q: got %+v", tc.repo, w)
		}
	}
	w, err := ParseWorkspace(withAnnotations(map[string]string{
		contract.AnnotationRepo: "a/b", contract.AnnotationBranch: "release/1.2", contract.AnnotationSecret: "my.secret",
		contract.AnnotationClaim: "my-claim", contract.AnnotationContainer: "opencode",
	}), s)
	if err != nil || w.Branch != "release/1.2" || w.Secret != "my.secret" || w.Claim != "my-claim" || w.Container != "opencode" {
		t.Errorf("all annotations: %+v, %v", w, err)
	}
}

// TestParseWorkspaceDenies covers every bad-input class of DESIGN.md: the
// error names the annotation, shows the value (redacted) and says the fix.
func TestParseWorkspaceDenies(t *testing.T) {
	for _, tc := range []struct {
		name, key, value string
		want             []string // substrings of the message
		never            string   // must not appear in the message
	}{
		{"missing repo", contract.AnnotationRepo, "", []string{"missing", "owner/name"}, ""},
		{"ssh scheme", contract.AnnotationRepo, "ssh://git@github.com/a/b.git", []string{"scheme ssh://", "only https"}, ""},
		{"git scheme", contract.AnnotationRepo, "git://github.com/a/b.git", []string{"scheme git://"}, ""},
		{"http scheme", contract.AnnotationRepo, "http://github.com/a/b.git", []string{"scheme http://"}, ""},
		{"file scheme", contract.AnnotationRepo, "file:///etc/passwd", []string{"scheme file://"}, ""},
		{"ext transport", contract.AnnotationRepo, "ext::sh -c touch% /tmp/pwned", []string{"whitespace"}, ""},
		{"ext transport no space", contract.AnnotationRepo, "ext::sh", []string{"remote helper transport"}, ""},
		{"scp style", contract.AnnotationRepo, "git@github.com:a/b.git", []string{"scp-style"}, ""},
		{"option injection", contract.AnnotationRepo, "--upload-pack=touch", []string{"starts with '-'"}, ""},
		{"credentials", contract.AnnotationRepo, "https://ghp_SECRET@github.com/a/b", []string{"credentials", "GITHUB_TOKEN", "REDACTED"}, "ghp_SECRET"},
		{"user and password", contract.AnnotationRepo, "https://x:ghp_SECRET@github.com/a/b", []string{"credentials"}, "ghp_SECRET"},
		{"query string", contract.AnnotationRepo, "https://github.com/a/b?token=ghp_SECRET", []string{"query string", "REDACTED"}, "ghp_SECRET"},
		{"fragment", contract.AnnotationRepo, "https://github.com/a/b#main", []string{"query string or fragment"}, ""},
		{"dot dot", contract.AnnotationRepo, "https://github.com/a/../b", []string{"'..'"}, ""},
		{"dot dot short", contract.AnnotationRepo, "../b", []string{"'..'"}, ""},
		{"whitespace", contract.AnnotationRepo, "a/b c", []string{"whitespace"}, ""},
		{"control character", contract.AnnotationRepo, "a/b\x00", []string{"control"}, ""},
		{"newline", contract.AnnotationRepo, "a/b\nfoo", []string{"whitespace"}, ""},
		{"three segments", contract.AnnotationRepo, "a/b/c", []string{"not owner/name"}, ""},
		{"token as user, scp form", contract.AnnotationRepo, "x-access-token:ghp_SECRET@github.com:owner/name", []string{"credentials", "REDACTED@github.com"}, "ghp_SECRET"},
		{"token as password, no scheme", contract.AnnotationRepo, "user:ghp_SECRET@github.com/owner/name", []string{"credentials", "REDACTED"}, "ghp_SECRET"},
		{"token as user, no scheme", contract.AnnotationRepo, "ghp_SECRET@github.com:owner/name.git", []string{"credentials", "REDACTED"}, "ghp_SECRET"},
		{"name starts with a dot", contract.AnnotationRepo, "a/.git", []string{"not a valid owner/name", "start with"}, ""},
		{"dotfile name", contract.AnnotationRepo, "a/.hidden", []string{"not a valid owner/name"}, ""},
		{"name too long", contract.AnnotationRepo, "a/" + strings.Repeat("n", 101), []string{"1 to 100"}, ""},
		{"leading slash", contract.AnnotationRepo, "/etc/passwd", []string{"starts with '/'"}, ""},
		{"owner starts with dash", contract.AnnotationRepo, "https://github.com/-a/b", []string{"not a valid owner/name"}, ""},
		{"unicode slash look-alike", contract.AnnotationRepo, "a\u2215b", []string{"non-ASCII"}, ""},
		{"cyrillic look-alike", contract.AnnotationRepo, "\u0430/b", []string{"non-ASCII"}, ""},
		{"query without scheme", contract.AnnotationRepo, "a/b?token=ghp_SECRET", []string{"query string", "REDACTED"}, "ghp_SECRET"},
		{"one segment", contract.AnnotationRepo, "b", []string{"not owner/name"}, ""},
		{"host not allowed", contract.AnnotationRepo, "https://gitlab.com/a/b", []string{"gitlab.com", "--allowed-git-hosts"}, ""},
		{"port not allowed", contract.AnnotationRepo, "https://github.com:444/a/b", []string{"github.com:444", "not allowed"}, ""},
		{"branch dot dot", contract.AnnotationBranch, "a..b", []string{"not a valid git branch"}, ""},
		{"branch leading dash", contract.AnnotationBranch, "-f", []string{"not a valid git branch"}, ""},
		{"branch lock", contract.AnnotationBranch, "main.lock", []string{"not a valid git branch"}, ""},
		{"branch space", contract.AnnotationBranch, "my branch", []string{"not a valid git branch"}, ""},
		{"branch empty", contract.AnnotationBranch, "", []string{"not a valid git branch"}, ""},
		{"branch at brace", contract.AnnotationBranch, "a@{1}", []string{"not a valid git branch"}, ""},
		{"branch trailing slash", contract.AnnotationBranch, "a/", []string{"not a valid git branch"}, ""},
		{"branch colon", contract.AnnotationBranch, "a:b", []string{"not a valid git branch"}, ""},
		{"secret uppercase", contract.AnnotationSecret, "My_Secret", []string{"not a valid name", "DNS-1123"}, ""},
		{"claim too long", contract.AnnotationClaim, strings.Repeat("a", 254), []string{"not a valid name"}, ""},
		{"container with dot", contract.AnnotationContainer, "app.v1", []string{"not a valid name", "DNS-1123 label"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := map[string]string{contract.AnnotationRepo: "a/b"}
			a[tc.key] = tc.value
			_, err := ParseWorkspace(withAnnotations(a), testSettings())
			var ae *contract.AnnotationError
			if !errors.As(err, &ae) {
				t.Fatalf("want an AnnotationError, got %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "annotation "+tc.key+":") {
				t.Errorf("message does not name %s: %s", tc.key, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
			if tc.never != "" && strings.Contains(msg, tc.never) {
				t.Errorf("message leaks %q: %s", tc.never, msg)
			}
		})
	}
}

// TestGeneratedNameNeedsTheClaimAnnotation: a Deployment created with
// metadata.generateName has no name when the webhook sees it, so the claim
// cannot be named after it; the denial names the annotation that fixes it.
func TestGeneratedNameNeedsTheClaimAnnotation(t *testing.T) {
	d := withAnnotations(map[string]string{contract.AnnotationRepo: "a/b"})
	d.Name, d.GenerateName = "", "workspace-"
	_, err := ParseWorkspace(d, testSettings())
	if err == nil || !strings.Contains(err.Error(), "annotation "+contract.AnnotationClaim+":") || !strings.Contains(err.Error(), "generateName") {
		t.Fatalf("want an error naming %s and generateName, got %v", contract.AnnotationClaim, err)
	}
	d.Annotations[contract.AnnotationClaim] = "my-claim"
	if w, err := ParseWorkspace(d, testSettings()); err != nil || w.Claim != "my-claim" {
		t.Errorf("with the claim annotation: claim %q, %v", w.Claim, err)
	}
}

func TestNamedContainerMustExist(t *testing.T) {
	d := injectiontest.ReadDeployment(t, "../test/fixtures/app-template/flux.rendered.yaml")
	d.Annotations[contract.AnnotationContainer] = "opencode"
	_, _, err := Mutate(d, nil, testSettings())
	if err == nil || !strings.Contains(err.Error(), "names no container") || !strings.Contains(err.Error(), "(it has app)") {
		t.Errorf("got %v", err)
	}
}

func TestDeletingDeploymentPasses(t *testing.T) {
	d := injectiontest.ReadDeployment(t, "testdata/replicas-2.yaml")
	now := metav1.Now()
	d.DeletionTimestamp = &now
	out, _, err := Mutate(d, nil, testSettings())
	if err != nil || IsInjected(out) {
		t.Errorf("a Deployment being deleted must pass untouched: %v", err)
	}
}
