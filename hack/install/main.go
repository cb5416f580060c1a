// Command install writes the install manifest of a release: deploy/ as
// kustomize renders it, with the injector's image replaced by -image (the
// pushed repo@sha256:… that hack/image -digest-file wrote). The seed image
// follows the injector's own image, so it is pinned too.
//
//	go run ./hack/install -image "$(go run ./hack/chart -image)@sha256:…" > install.yaml
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/angryninja/opencode-injector/hack/chart/render"
)

var pinned = regexp.MustCompile(`^([a-z0-9.-]+(?::[0-9]+)?/[a-z0-9._/-]+)@(sha256:[0-9a-f]{64})$`)

func main() {
	image := flag.String("image", "", "the injector image pinned by digest: repo@sha256:…")
	deploy := flag.String("deploy", "deploy", "the kustomize base to render")
	chart := flag.String("chart", "charts/opencode-injector", "the chart deploy/ is rendered from, whose image.repository deploy/ names")
	flag.Parse()
	if err := Write(os.Stdout, *deploy, *chart, *image); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		os.Exit(1)
	}
}

// Write renders deploy with the injector's image (the chart's
// image.repository) replaced by image.
func Write(w io.Writer, deploy, chart, image string) error {
	m := pinned.FindStringSubmatch(image)
	if m == nil {
		return fmt.Errorf("-image %q: want repo@sha256:<64 hex digits>", image)
	}
	injector, err := render.ImageRepository(chart)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(deploy)
	if err != nil {
		return err
	}
	// An in-memory overlay over the base on disk.
	fs := filesys.MakeFsOnDisk()
	overlay, err := os.MkdirTemp("", "install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(overlay)
	rel, err := filepath.Rel(overlay, abs)
	if err != nil {
		return err
	}
	k := types.Kustomization{Resources: []string{rel}, Images: []types.Image{{Name: injector, NewName: m[1], Digest: m[2]}}}
	b, err := yamlOf(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), b, 0o644); err != nil {
		return err
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, overlay)
	if err != nil {
		return fmt.Errorf("kustomize build %s: %w", deploy, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return err
	}
	if !bytes.Contains(out, []byte("image: "+image+"\n")) || bytes.Contains(out, []byte(injector+":")) {
		return fmt.Errorf("the rendered manifest does not pin the injector to %s", image)
	}
	header := "# opencode-injector install manifest: deploy/ with the injector pinned by digest.\n# kubectl apply -f install.yaml (needs cert-manager)\n"
	_, err = io.WriteString(w, header+strings.TrimPrefix(string(out), "---\n"))
	return err
}

func yamlOf(k types.Kustomization) ([]byte, error) {
	var b strings.Builder
	b.WriteString("resources:\n")
	for _, r := range k.Resources {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	b.WriteString("images:\n")
	for _, i := range k.Images {
		fmt.Fprintf(&b, "  - name: %s\n    newName: %s\n    digest: %s\n", i.Name, i.NewName, i.Digest)
	}
	return []byte(b.String()), nil
}
