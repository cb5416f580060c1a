// Package render renders the injector's Helm chart with Helm's own Go
// packages (its loader, values and schema validation, template engine and
// linter), the steps `helm template` and `helm lint` take.
package render

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
)

// The release deploy/ is rendered as, and the oldest Kubernetes the chart
// claims (Chart.yaml kubeVersion): templates are rendered for it.
const (
	ReleaseName    = "opencode-injector"
	Namespace      = "opencode-system"
	MinKubeVersion = "v1.30.0"
)

// ChartDir is the chart's directory in the repository at root.
func ChartDir(root string) string {
	return filepath.Join(root, "charts", "opencode-injector")
}

var separator = regexp.MustCompile(`(?m)^---\s*$`)

// Template renders the chart in dir with values over its defaults, as
// `helm template opencode-injector DIR -n opencode-system --kube-version
// 1.30 -f values` does, and returns each template's documents by the
// template's file name (deployment.yaml). Templates that render nothing are
// left out.
func Template(dir string, values map[string]any) (map[string][]string, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	caps, err := capabilities()
	if err != nil {
		return nil, err
	}
	if !chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s: kubeVersion %s excludes Kubernetes %s", dir, chrt.Metadata.KubeVersion, caps.KubeVersion.Version)
	}
	opts := common.ReleaseOptions{Name: ReleaseName, Namespace: Namespace, Revision: 1, IsInstall: true}
	vals, err := util.ToRenderValuesWithSchemaValidation(chrt, values, opts, caps, false)
	if err != nil {
		return nil, fmt.Errorf("values of chart %s: %w", dir, err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", dir, err)
	}
	out := map[string][]string{}
	for name, text := range files {
		if path.Base(name) == "NOTES.txt" {
			continue
		}
		for _, doc := range separator.Split(text, -1) {
			if doc = strings.TrimSpace(doc); doc != "" && !onlyComments(doc) {
				out[path.Base(name)] = append(out[path.Base(name)], doc+"\n")
			}
		}
	}
	return out, nil
}

// onlyComments: a document with no YAML in it (Helm drops these too).
func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// Lint is `helm lint --strict` of the chart in dir with values: every
// warning and error it reports.
func Lint(dir string, values map[string]any) []error {
	caps, err := capabilities()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, m := range lint.RunAll(dir, values, Namespace, lint.WithKubeVersion(&caps.KubeVersion)).Messages {
		if m.Severity >= support.WarningSev {
			errs = append(errs, m.Err)
		}
	}
	return errs
}

func capabilities() (*common.Capabilities, error) {
	kube, err := common.ParseKubeVersion(MinKubeVersion)
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kube
	return caps, nil
}
