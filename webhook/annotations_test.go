package webhook

import (
	"errors"
	"strings"
	"testing"

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
		{"angryninja/k8s-cluster", "https://github.com/angryninja/k8s-cluster.git", "k8s-cluster"},
		{"https://github.com/angryninja/home-assistant-config.git", "https://github.com/angryninja/home-assistant-config.git", "home-assistant-config"},
		{"https://GitHub.com/a/b", "https://github.com/a/b.git", "b"},
		{"https://git.example.com:8443/team/repo.name", "https://git.example.com:8443/team/repo.name.git", "repo.name"},
	} {
		w, err := ParseWorkspace(withAnnotations(map[string]string{AnnotationRepo: tc.repo}), s)
		if err != nil {
			t.Errorf("%q: %v", tc.repo, err)
			continue
		}
		if w.RepoURL != tc.url || w.RepoName != tc.name || w.Secret != DefaultSecretName || w.Claim != "ws" {
			t.Errorf("%q: got %+v", tc.repo, w)
		}
	}
	w, err := ParseWorkspace(withAnnotations(map[string]string{
		AnnotationRepo: "a/b", AnnotationBranch: "release/1.2", AnnotationSecret: "my.secret",
		AnnotationClaim: "my-claim", AnnotationContainer: "opencode",
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
		{"missing repo", AnnotationRepo, "", []string{"missing", "owner/name"}, ""},
		{"ssh scheme", AnnotationRepo, "ssh://git@github.com/a/b.git", []string{"scheme ssh://", "only https"}, ""},
		{"git scheme", AnnotationRepo, "git://github.com/a/b.git", []string{"scheme git://"}, ""},
		{"http scheme", AnnotationRepo, "http://github.com/a/b.git", []string{"scheme http://"}, ""},
		{"file scheme", AnnotationRepo, "file:///etc/passwd", []string{"scheme file://"}, ""},
		{"ext transport", AnnotationRepo, "ext::sh -c touch% /tmp/pwned", []string{"whitespace"}, ""},
		{"ext transport no space", AnnotationRepo, "ext::sh", []string{"remote helper transport"}, ""},
		{"scp style", AnnotationRepo, "git@github.com:a/b.git", []string{"scp-style"}, ""},
		{"option injection", AnnotationRepo, "--upload-pack=touch", []string{"starts with '-'"}, ""},
		{"credentials", AnnotationRepo, "https://ghp_SECRET@github.com/a/b", []string{"credentials", "GITHUB_TOKEN", "REDACTED"}, "ghp_SECRET"},
		{"user and password", AnnotationRepo, "https://x:ghp_SECRET@github.com/a/b", []string{"credentials"}, "ghp_SECRET"},
		{"query string", AnnotationRepo, "https://github.com/a/b?token=ghp_SECRET", []string{"query string", "REDACTED"}, "ghp_SECRET"},
		{"fragment", AnnotationRepo, "https://github.com/a/b#main", []string{"query string or fragment"}, ""},
		{"dot dot", AnnotationRepo, "https://github.com/a/../b", []string{"'..'"}, ""},
		{"dot dot short", AnnotationRepo, "../b", []string{"'..'"}, ""},
		{"whitespace", AnnotationRepo, "a/b c", []string{"whitespace"}, ""},
		{"control character", AnnotationRepo, "a/b\x00", []string{"control"}, ""},
		{"newline", AnnotationRepo, "a/b\nfoo", []string{"whitespace"}, ""},
		{"three segments", AnnotationRepo, "a/b/c", []string{"not owner/name"}, ""},
		{"one segment", AnnotationRepo, "b", []string{"not owner/name"}, ""},
		{"host not allowed", AnnotationRepo, "https://gitlab.com/a/b", []string{"gitlab.com", "--allowed-git-hosts"}, ""},
		{"port not allowed", AnnotationRepo, "https://github.com:444/a/b", []string{"github.com:444", "not allowed"}, ""},
		{"branch dot dot", AnnotationBranch, "a..b", []string{"not a valid git branch"}, ""},
		{"branch leading dash", AnnotationBranch, "-f", []string{"not a valid git branch"}, ""},
		{"branch lock", AnnotationBranch, "main.lock", []string{"not a valid git branch"}, ""},
		{"branch space", AnnotationBranch, "my branch", []string{"not a valid git branch"}, ""},
		{"branch empty", AnnotationBranch, "", []string{"not a valid git branch"}, ""},
		{"branch at brace", AnnotationBranch, "a@{1}", []string{"not a valid git branch"}, ""},
		{"branch trailing slash", AnnotationBranch, "a/", []string{"not a valid git branch"}, ""},
		{"branch colon", AnnotationBranch, "a:b", []string{"not a valid git branch"}, ""},
		{"secret uppercase", AnnotationSecret, "My_Secret", []string{"not a valid name", "DNS-1123"}, ""},
		{"claim too long", AnnotationClaim, strings.Repeat("a", 254), []string{"not a valid name"}, ""},
		{"container with dot", AnnotationContainer, "app.v1", []string{"not a valid name", "DNS-1123 label"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := map[string]string{AnnotationRepo: "a/b"}
			a[tc.key] = tc.value
			_, err := ParseWorkspace(withAnnotations(a), testSettings())
			var ae *AnnotationError
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

func TestNamedContainerMustExist(t *testing.T) {
	d := readDeployment(t, "../test/fixtures/app-template/flux.rendered.yaml")
	d.Annotations[AnnotationContainer] = "opencode"
	_, _, err := Inject(d, testSettings())
	if err == nil || !strings.Contains(err.Error(), "names no container") || !strings.Contains(err.Error(), "(it has app)") {
		t.Errorf("got %v", err)
	}
}

func TestDeletingDeploymentPasses(t *testing.T) {
	d := readDeployment(t, "testdata/replicas-2.yaml")
	now := metav1.Now()
	d.DeletionTimestamp = &now
	out, _, err := Inject(d, testSettings())
	if err != nil || IsInjected(out) {
		t.Errorf("a Deployment being deleted must pass untouched: %v", err)
	}
}
