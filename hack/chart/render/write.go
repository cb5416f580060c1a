package render

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// handWritten are deploy/'s directories that are not rendered from the chart.
var handWritten = map[string]bool{"flux": true, "opencode-image": true}

// DeployDir is deploy/ in the repository at root.
func DeployDir(root string) string { return filepath.Join(root, "deploy") }

// Generated lists the files under deploy/ that Deploy owns today: all but
// the hand-written directories, by path relative to deploy/.
func Generated(root string) (map[string][]byte, error) {
	dir := DeployDir(root)
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if handWritten[rel] {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	return out, err
}

// WriteDeploy rewrites deploy/'s generated part and removes the generated
// files the chart no longer renders.
func WriteDeploy(root string) error {
	want, err := Deploy(ChartDir(root))
	if err != nil {
		return err
	}
	have, err := Generated(root)
	if err != nil {
		return err
	}
	for rel, b := range have {
		if _, ok := want[rel]; !ok && bytes.HasPrefix(b, []byte(Header)) {
			if err := os.Remove(filepath.Join(DeployDir(root), rel)); err != nil {
				return err
			}
		}
	}
	for rel, b := range want {
		p := filepath.Join(DeployDir(root), rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// DefaultValues are the chart's values.yaml.
func DefaultValues(chartDir string) (map[string]any, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	return chrt.Values, nil
}

// ImageRepository is the injector's image repository, named once: the
// chart's image.repository.
func ImageRepository(chartDir string) (string, error) {
	vals, err := DefaultValues(chartDir)
	if err != nil {
		return "", err
	}
	image, _ := vals["image"].(map[string]any)
	repo, _ := image["repository"].(string)
	if repo == "" {
		return "", fmt.Errorf("chart %s: values.yaml sets no image.repository", chartDir)
	}
	return repo, nil
}
