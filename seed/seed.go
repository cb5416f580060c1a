// Package seed is what the opencode-seed init container does on every pod
// start: clone the repository once, seed the Copilot login, lay out HOME.
package seed

import (
	"fmt"
	"io"
)

// Main runs `opencode-injector seed` and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "seed: not implemented yet")
	return 2
}
