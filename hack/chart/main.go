// Command chart writes deploy/ from the chart: `helm template` of its
// defaults, one file per template, with the kustomization and Components
// that wrap it (render.Deploy). Files it wrote before and no longer renders
// are removed; deploy/flux and deploy/opencode-image are not its own.
//
//	go run ./hack/chart           # (re)write deploy/
//	go run ./hack/chart -image    # print the injector's image repository
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/angryninja/opencode-injector/hack/chart/render"
)

func main() {
	image := flag.Bool("image", false, "print the injector's image repository (the chart's image.repository) and exit")
	root := flag.String("root", ".", "the repository's root")
	flag.Parse()
	if err := run(*root, *image); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func run(root string, image bool) error {
	if image {
		repo, err := render.ImageRepository(render.ChartDir(root))
		if err != nil {
			return err
		}
		fmt.Println(repo)
		return nil
	}
	return render.WriteDeploy(root)
}
