// Package workflows lints .github/workflows with actionlint (its library,
// from the Go module proxy) and checks what CI and the release must do.
package workflows

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/hack/chart/render"
)

const dir = "../../.github/workflows"

func files(t *testing.T) []string {
	t.Helper()
	f, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(f) < 2 {
		t.Fatalf("workflows: %v %v", f, err)
	}
	return f
}

func TestActionlint(t *testing.T) {
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", filepath.Base(e.Filepath), e.Line, e.Column, e.Message, e.Kind)
	}
}

type workflow struct {
	On   map[string]any `json:"on"`
	Jobs map[string]struct {
		Needs       any               `json:"needs"`
		Permissions map[string]string `json:"permissions"`
		Steps       []struct {
			Uses string            `json:"uses"`
			Run  string            `json:"run"`
			With map[string]any    `json:"with"`
			Env  map[string]string `json:"env"`
		} `json:"steps"`
	} `json:"jobs"`
}

func read(t *testing.T, name string) (workflow, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	// YAML 1.1 reads the key on as true.
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if on, ok := raw["true"].(map[string]any); ok {
		w.On = on
	}
	return w, string(b)
}

// runs reports whether a step of job runs a command matching re.
func runs(w workflow, job string, re string) bool {
	for _, s := range w.Jobs[job].Steps {
		if regexp.MustCompile(re).MatchString(s.Run) {
			return true
		}
	}
	return false
}

func TestCIRunsTheSuiteOnPullRequests(t *testing.T) {
	w, _ := read(t, "ci.yaml")
	if _, ok := w.On["pull_request"]; !ok {
		t.Error("ci does not run on pull requests")
	}
	if !runs(w, "test", `(?m)^\.ci/run$`) {
		t.Error("ci does not run .ci/run")
	}
}

// TestReleasePublishesSignedPinnedImages: on a version tag the suite runs
// first; the injector image is the one hack/image builds (make image),
// pushed as built to the repository the chart names; opencode-git is built
// for both platforms; the chart is pushed as an OCI artifact; all three are
// signed keylessly; install.yaml pins the injector by digest.
func TestReleasePublishesSignedPinnedImages(t *testing.T) {
	w, text := read(t, "release.yaml")
	push, _ := w.On["push"].(map[string]any)
	if tags, _ := push["tags"].([]any); len(tags) == 0 || !strings.HasPrefix(tags[0].(string), "v") {
		t.Errorf("release does not run on version tags: %v", w.On)
	}
	if !runs(w, "test", `(?m)^\.ci/run$`) {
		t.Error("the release does not run .ci/run")
	}
	r := w.Jobs["release"]
	if needs, _ := r.Needs.(string); needs != "test" {
		t.Errorf("the release job needs %v, want test", r.Needs)
	}
	if r.Permissions["id-token"] != "write" || r.Permissions["packages"] != "write" || r.Permissions["contents"] != "write" {
		t.Errorf("permissions %v: keyless signing needs id-token: write, pushing packages: write, the release contents: write", r.Permissions)
	}
	for _, want := range []string{
		`(?s)go run \./hack/image .*-push "\$INJECTOR:\$VERSION" -digest-file`,
		`cosign sign --yes "\$INJECTOR_REF"`,
		`cosign sign --yes "\$OPENCODE_GIT@\$OPENCODE_GIT_DIGEST"`,
		`go run \./hack/install -image "\$INJECTOR_REF" > install\.yaml`,
		`INJECTOR=\$\(go run \./hack/chart -image\)`,
		`\$HELM package charts/opencode-injector`,
		`\$HELM push "bin/chart/opencode-injector-\$\{VERSION#v\}\.tgz" "oci://\$CHARTS"`,
		`cosign sign --yes "\$CHART_REF"`,
		`gh release create "\$VERSION" install\.yaml`,
	} {
		if !runs(w, "release", want) {
			t.Errorf("no release step runs %s", want)
		}
	}
	found := false
	for _, s := range r.Steps {
		if strings.HasPrefix(s.Uses, "docker/build-push-action@") {
			found = s.With["context"] == "deploy/opencode-image" && s.With["platforms"] == "linux/amd64,linux/arm64" && s.With["push"] == true &&
				strings.Contains(s.With["build-args"].(string), "OPENCODE_VERSION=")
		}
	}
	if !found {
		t.Error("opencode-git is not built from deploy/opencode-image for linux/amd64 and linux/arm64 with OPENCODE_VERSION and pushed")
	}
	if !strings.Contains(text, "hack/image") || strings.Contains(text, "docker build ") {
		t.Error("the injector must be the image make image builds")
	}
}

// TestReleaseGuardMatchesDeploy: the release checks that the chart,
// deploy/ (its rendered defaults) and the Flux example's OCIRepository name
// the tag being released; they must agree so that one tag passes it.
func TestReleaseGuardMatchesDeploy(t *testing.T) {
	file := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join("../..", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chart := file("charts/opencode-injector/Chart.yaml")
	appVersion := regexp.MustCompile(`(?m)^appVersion: (v\S+)$`).FindSubmatch(chart)
	version := regexp.MustCompile(`(?m)^version: (\S+)$`).FindSubmatch(chart)
	image := regexp.MustCompile(`(?m)image: \S+/opencode-injector:(v\S+)$`).FindSubmatch(file("deploy/deployment.yaml"))
	tag := regexp.MustCompile(`(?m)tag: (\S+)$`).FindSubmatch(file("deploy/flux/kubernetes/apps/opencode-system/opencode-injector/app/ocirepository.yaml"))
	if appVersion == nil || version == nil || image == nil || tag == nil {
		t.Fatalf("appVersion %q, version %q, deploy/ image %q, OCIRepository tag %q: one is missing", appVersion, version, image, tag)
	}
	if string(appVersion[1]) != "v"+string(version[1]) || string(image[1]) != string(appVersion[1]) || string(tag[1]) != string(version[1]) {
		t.Errorf("Chart.yaml appVersion %s and version %s, deploy/ image tag %s, the Flux OCIRepository tag %s: the release guard needs vX.Y.Z, X.Y.Z, vX.Y.Z, X.Y.Z",
			appVersion[1], version[1], image[1], tag[1])
	}
}

// TestReleaseDerivesOpencodeGit: the release publishes opencode-git beside
// the injector image the chart names (not under the GitHub owner, which a
// fork changes), checks that the examples' workspaces pull it from there,
// and its Helm instructions create the namespace they install into.
func TestReleaseDerivesOpencodeGit(t *testing.T) {
	w, text := read(t, "release.yaml")
	if strings.Contains(text, "repository_owner") {
		t.Error("release.yaml names an image by github.repository_owner: derive it from the chart's image.repository")
	}
	for _, want := range []string{
		`OPENCODE_GIT=\$\{INJECTOR%/\*\}/opencode-git`,
		`grep -q "repository: \$\{OPENCODE_GIT\}\\\$" "\$hr"`,
		`helm install opencode-injector oci://\S+ --version \S+ -n opencode-system --create-namespace`,
	} {
		if !runs(w, "release", want) {
			t.Errorf("no release step runs %s", want)
		}
	}
	injector, err := render.ImageRepository(render.ChartDir("../.."))
	if err != nil {
		t.Fatal(err)
	}
	want := "repository: " + path.Dir(injector) + "/opencode-git"
	hrs, err := filepath.Glob("../../deploy/flux/kubernetes/apps/opencode/*/app/helmrelease.yaml")
	if err != nil || len(hrs) == 0 {
		t.Fatalf("example HelmReleases: %v %v", hrs, err)
	}
	for _, hr := range hrs {
		b, err := os.ReadFile(hr)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(want) + `$`).Match(b) {
			t.Errorf("%s does not pull %q, where the release publishes opencode-git", hr, want)
		}
	}
}
