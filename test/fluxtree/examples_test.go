package fluxtree_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// example is one Kustomization of deploy/flux (a ks.yaml), as written.
type example struct {
	file      string // relative to deploy/flux
	name      string
	namespace string
	spec      map[string]any
}

func (e example) String() string { return e.namespace + "/" + e.name + " (" + e.file + ")" }

// targetNamespace is where the Kustomization applies its objects.
func (e example) targetNamespace() string {
	if ns, _ := e.spec["targetNamespace"].(string); ns != "" {
		return ns
	}
	return e.namespace
}

// substitute is the Kustomization's own postBuild.substitute.
func (e example) substitute() map[string]string {
	vars := map[string]string{}
	postBuild, _ := e.spec["postBuild"].(map[string]any)
	own, _ := postBuild["substitute"].(map[string]any)
	for k, v := range own {
		vars[k] = fmt.Sprint(v)
	}
	return vars
}

// exampleKustomizations are every ks.yaml under deploy/flux.
func (f *fixture) exampleKustomizations() []example {
	f.t.Helper()
	var out []example
	err := filepath.WalkDir(f.flux, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "ks.yaml" {
			return err
		}
		u := f.readYAML(path)
		rel, _ := filepath.Rel(f.flux, path)
		spec, _ := u.Object["spec"].(map[string]any)
		out = append(out, example{file: rel, name: u.GetName(), namespace: u.GetNamespace(), spec: spec})
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(out) == 0 {
		f.t.Fatalf("no ks.yaml under %s", f.flux)
	}
	return out
}

func findExample(t *testing.T, examples []example, namespace, name string) example {
	t.Helper()
	for _, e := range examples {
		if e.namespace == namespace && e.name == name {
			return e
		}
	}
	t.Fatalf("deploy/flux has no Kustomization %s/%s", namespace, name)
	return example{}
}
