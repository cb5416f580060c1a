package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

const fluxFixture = "../../test/fixtures/app-template/flux.rendered.yaml"

func runInject(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"inject"}, args...), bytes.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// splitOnDeployment returns the text before and after the Deployment
// document of the flux fixture.
func splitOnDeployment(t *testing.T, s string) (before, after string) {
	t.Helper()
	i := strings.Index(s, "apiVersion: apps/v1\nkind: Deployment")
	j := strings.Index(s, "# Source: app-template/templates/common.yaml\napiVersion: gateway.networking.k8s.io/v1")
	if i < 0 || j < i {
		t.Fatalf("unexpected layout:\n%s", s)
	}
	return s[:i], s[j:]
}

func TestInjectKeepsOtherDocumentsByteForByte(t *testing.T) {
	in, err := os.ReadFile(fluxFixture)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runInject(t, nil, "-f", fluxFixture, "--seed-image", "example.com/seed:1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	inBefore, inAfter := splitOnDeployment(t, string(in))
	outBefore, outAfter := splitOnDeployment(t, out)
	if inBefore != outBefore || inAfter != outAfter {
		t.Errorf("documents around the Deployment changed:\n--- before\n%s\n--- after\n%s", outBefore, outAfter)
	}
	if !strings.Contains(out, "image: example.com/seed:1") || !strings.Contains(out, "name: opencode-seed") {
		t.Errorf("the Deployment was not injected with the flag's seed image:\n%s", out)
	}
	again, _, code := runInject(t, []byte(out), "-f", "-", "--seed-image", "example.com/seed:1")
	if code != 0 || again != out {
		t.Errorf("injecting the output again changed it (exit %d)", code)
	}
}

func TestInjectInvalidDocument(t *testing.T) {
	in, err := os.ReadFile(fluxFixture)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(in), "angryninja/k8s-cluster", "git@github.com:angryninja/k8s-cluster.git", 1)
	out, stderr, code := runInject(t, []byte(bad), "-f", "-", "--seed-image", "example.com/seed:1")
	if code != 1 || out != "" {
		t.Errorf("exit %d with stdout %q; want 1 and nothing", code, out)
	}
	for _, want := range []string{"document 3 (Deployment opencode/opencode-flux)", "annotation opencode.angryninja.cloud/repo", "scp-style"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, stderr)
		}
	}
	out, stderr, code = runInject(t, []byte("a: [unclosed\n---\nkind: Service\n"), "-f", "-", "--seed-image", "example.com/seed:1")
	if code != 1 || out != "" || !strings.Contains(stderr, "document 1: invalid YAML") {
		t.Errorf("broken YAML: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestInjectWarningsGoToStderr(t *testing.T) {
	in, err := os.ReadFile("../../injection/testdata/rolling-update.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runInject(t, in, "-f", "-", "--seed-image", "example.com/seed:1")
	if code != 0 || !strings.Contains(stderr, "warning: document 1 (Deployment rolling): spec.strategy RollingUpdate replaced by Recreate") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(out, "warning") {
		t.Error("a warning reached stdout")
	}
}

func TestInjectFlagErrors(t *testing.T) {
	if _, stderr, code := runInject(t, nil); code != 2 || !strings.Contains(stderr, "-f FILE is required") {
		t.Errorf("no -f: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runInject(t, nil, "-f", "-", "--seed-image", "example.com/seed:1", "--default-limits", "cpu"); code != 2 || !strings.Contains(stderr, "want name=quantity") {
		t.Errorf("bad limits: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runInject(t, nil, "-f", "-", "--seed-image", "example.com/seed:1", "--allowed-git-hosts", "https://github.com"); code != 2 || !strings.Contains(stderr, "without scheme") {
		t.Errorf("bad hosts: exit %d, %s", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "opencode-injector dev") {
		t.Errorf("exit %d: %s", code, out.String())
	}
}

func TestServeHelpNamesEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"serve", "-h"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, flag := range []string{"seed-image", "default-secret", "allowed-git-hosts", "default-requests", "default-limits",
		"cert-dir", "port", "metrics-bind-address", "health-probe-bind-address", "leader-elect"} {
		if !strings.Contains(out.String(), "-"+flag) {
			t.Errorf("serve -h lacks --%s", flag)
		}
	}
	// Metrics are secure unless asked otherwise.
	if !regexp.MustCompile(`-metrics-secure\n[^\n]*\(default true\)`).MatchString(out.String()) {
		t.Errorf("serve's --metrics-secure is not on by default:\n%s", out.String())
	}
	if code := run([]string{"serve", "--default-requests", "nonsense"}, nil, &out, &out); code != 2 {
		t.Errorf("a bad flag exits %d, want 2", code)
	}
}

// TestInjectNeedsASeedImage: a build that is not a release has no image of
// its own to inject, so inject refuses to guess one when a document is to
// be injected, naming it and the flag; documents it passes through or
// un-injects need no seed image.
func TestInjectNeedsASeedImage(t *testing.T) {
	fixture, err := os.ReadFile(fluxFixture)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runInject(t, fixture, "-f", "-")
	if code != 2 || out != "" || !strings.Contains(stderr, "document") || !strings.Contains(stderr, "pass --seed-image") {
		t.Errorf("version %s without --seed-image: exit %d, stdout %q, stderr %q", version, code, out, stderr)
	}
	if out, _, code := runInject(t, []byte("kind: Service\n"), "-f", "-"); code != 0 || out != "kind: Service\n" {
		t.Errorf("a document to pass through needs a seed image: exit %d, %q", code, out)
	}
	injected, _, code := runInject(t, fixture, "-f", "-", "--seed-image", "example.com/seed:1")
	if code != 0 {
		t.Fatalf("with --seed-image: exit %d", code)
	}
	unlabeled := strings.Replace(injected, "opencode.angryninja.cloud/inject: \"true\"", "opencode.angryninja.cloud/inject: \"false\"", 1)
	if out, stderr, code := runInject(t, []byte(unlabeled), "-f", "-"); code != 0 || strings.Contains(out, "opencode-seed") {
		t.Errorf("un-injection needs a seed image: exit %d, stderr %q", code, stderr)
	}
}

func TestReleasedImage(t *testing.T) {
	for v, want := range map[string]string{
		"v0.2.0":           "ghcr.io/angryninja/opencode-injector:v0.2.0",
		"v1.10.3-rc.1":     "ghcr.io/angryninja/opencode-injector:v1.10.3-rc.1",
		"dev":              "",
		"v0.2.0-3-gabc123": "",
		"v0.2.0-dirty":     "",
		"abc1234":          "",
	} {
		if got := releasedImage(v); got != want {
			t.Errorf("releasedImage(%q) = %q, want %q", v, got, want)
		}
	}
}

// A field these API types do not know (a newer cluster's) comes out of
// inject as the webhook's patch leaves it: kept.
func TestInjectKeepsUnknownFields(t *testing.T) {
	in, err := os.ReadFile(fluxFixture)
	if err != nil {
		t.Fatal(err)
	}
	withUnknown := strings.Replace(string(in), "      enableServiceLinks: false\n", "      enableServiceLinks: false\n      futurePodField: kept\n", 1)
	out, stderr, code := runInject(t, []byte(withUnknown), "-f", "-", "--seed-image", "example.com/seed:1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "futurePodField: kept") || !strings.Contains(out, "name: opencode-seed") {
		t.Errorf("the unknown field was dropped or nothing was injected:\n%s", out)
	}
}

// Injecting an injected manifest again with another release's seed image
// and defaults changes nothing until the user's part of it changes; then
// the current release applies. A seed image that is not the injector's own
// repository by digest is replaced, with a warning.
func TestInjectAgainKeepsTheInjectionUntilTheUsersChange(t *testing.T) {
	oldImage := "ghcr.io/angryninja/opencode-injector@sha256:" + strings.Repeat("1", 64)
	newImage := "ghcr.io/angryninja/opencode-injector@sha256:" + strings.Repeat("2", 64)
	once, stderr, code := runInject(t, nil, "-f", fluxFixture, "--seed-image", oldImage,
		"--default-requests", "cpu=100m,memory=256Mi", "--default-limits", "cpu=500m,memory=512Mi")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	again, stderr, code := runInject(t, []byte(once), "-f", "-", "--seed-image", newImage)
	if code != 0 || again != once || stderr != "" {
		t.Errorf("a new release changed an injected manifest (exit %d, stderr %q):\n%s", code, stderr, again)
	}

	changed := strings.Replace(once, "ghcr.io/angryninja/opencode-git:1.18.33", "ghcr.io/angryninja/opencode-git:9.9.9", 1)
	if changed == once {
		t.Fatal("the fixture's OpenCode image is not where the test expects it")
	}
	out, stderr, code := runInject(t, []byte(changed), "-f", "-", "--seed-image", newImage)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"image: " + newImage, "memory: 1Gi"} {
		if !strings.Contains(out, want) {
			t.Errorf("the user's change did not bring %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cpu: 500m") || strings.Contains(out, oldImage) {
		t.Errorf("the old release's injection stays after the user's change:\n%s", out)
	}

	tagged, _, code := runInject(t, nil, "-f", fluxFixture, "--seed-image", "example.com/seed:1")
	if code != 0 {
		t.Fatal("first injection failed")
	}
	out, stderr, code = runInject(t, []byte(tagged), "-f", "-", "--seed-image", newImage)
	if code != 0 || !strings.Contains(out, "image: "+newImage) || strings.Contains(out, "example.com/seed:1") ||
		!strings.Contains(stderr, "seed image example.com/seed:1 of init container opencode-seed is not ghcr.io/angryninja/opencode-injector pinned by digest") {
		t.Errorf("an untrusted seed image was kept (exit %d, stderr %q)", code, stderr)
	}
}

// A token pasted as an annotation value is not repeated by inject's
// denial or warnings.
func TestInjectHidesTokens(t *testing.T) {
	in, err := os.ReadFile(fluxFixture)
	if err != nil {
		t.Fatal(err)
	}
	const token = "ghp_0123456789abcdefABCDEF0123456789abcd"
	withToken := strings.Replace(string(in), "opencode.angryninja.cloud/repo: angryninja/k8s-cluster", "opencode.angryninja.cloud/repo: "+token, 1)
	_, stderr, code := runInject(t, []byte(withToken), "-f", "-", "--seed-image", "example.com/seed:1")
	if code == 0 || !strings.Contains(stderr, "annotation opencode.angryninja.cloud/repo") {
		t.Fatalf("exit %d, want a denial of the repo annotation: %s", code, stderr)
	}
	if strings.Contains(stderr, token[4:]) {
		t.Errorf("the token is repeated: %s", stderr)
	}
}

// A released inject pins its own tag image: injecting its output again with
// another release's image and other defaults changes nothing, as in the
// cluster, while a tag that is not a release is replaced.
func TestReinjectingWithAnotherReleaseChangesNothing(t *testing.T) {
	const repo = "ghcr.io/angryninja/opencode-injector"
	once, stderr, code := runInject(t, nil, "-f", fluxFixture, "--seed-image", repo+":v0.1.0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	again, stderr, code := runInject(t, []byte(once), "-f", "-", "--seed-image", repo+":v0.2.0", "--default-limits", "cpu=2,memory=3Gi")
	if code != 0 || again != once {
		t.Errorf("injecting again with another release changed the output (exit %d, stderr %q):\n%s", code, stderr, again)
	}
	edited := strings.Replace(once, "image: "+repo+":v0.1.0", "image: "+repo+":latest", 1)
	again, _, code = runInject(t, []byte(edited), "-f", "-", "--seed-image", repo+":v0.2.0")
	if code != 0 || !strings.Contains(again, "image: "+repo+":v0.2.0") || strings.Contains(again, ":latest") {
		t.Errorf("a pinned tag that is not a release was kept (exit %d):\n%s", code, again)
	}
}
