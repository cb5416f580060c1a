// Command opencode-injector is the webhook (serve), the init container's
// job (seed), the offline injection (inject), the cluster check (check)
// and its version (version).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/seed"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `opencode-injector turns a labeled app-template Deployment into a persistent OpenCode workspace.

Usage:
  opencode-injector serve   [flags]   run the mutating admission webhook
  opencode-injector inject  -f FILE   inject labeled Deployments in multi-document YAML (- reads stdin)
  opencode-injector seed    [flags]   clone the repo and seed the login (the init container's job)
  opencode-injector check   [flags]   check the installed injector and every workspace with your kubeconfig
  opencode-injector version           print the version

Run "opencode-injector COMMAND -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// benchCommands are filled only in builds with the benchbaseline tag.
var benchCommands = map[string]func(args []string, stderr io.Writer) int{}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(rest, stderr)
	case "inject":
		return injectCmd(rest, stdin, stdout, stderr)
	case "seed":
		return seed.Main(rest, stdout, stderr)
	case "check":
		return checkCmd(rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "opencode-injector %s (%s, contract %s)\n", version, runtime.Version(), contract.Version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if bench, ok := benchCommands[cmd]; ok {
			return bench(rest, stderr)
		}
		fmt.Fprintf(stderr, "opencode-injector: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// parseFlags parses args; on failure the flag package has already printed
// the problem and the usage, and it returns the exit code.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	switch err := fs.Parse(args); {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		return 2, false
	}
}

// defaultSettings are the injection flag defaults; the seed image is the
// released image of this binary's version, or empty when this build is not
// a release (then inject needs --seed-image; serve follows its own Pod).
func defaultSettings() injection.Settings {
	return injection.DefaultSettings(releasedImage(version))
}

// releasedImage is the published image of version v, or "" for a build
// that is not a release (dev, a commit, a dirty tree).
func releasedImage(v string) string {
	if !injection.ReleaseTag.MatchString(v) {
		return ""
	}
	return injection.ImageRepository + ":" + v
}
