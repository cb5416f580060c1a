#!/usr/bin/env bash
# Builds Flux's kustomize-controller from its Go module (prebuilt downloads
# are not reachable here) for the Flux-tree test (test/fluxtree), which runs
# it as its own process, and prints the directory that holds it. The
# controller's module cannot share ours (other Kubernetes library versions,
# an internal reconciler), so it is built in a copy of its own module
# directory. The result is cached; a set FLUX_ASSETS wins. The version is
# the one whose Kustomization CRD test/testenv installs.
set -euo pipefail

KUSTOMIZE_CONTROLLER_VERSION=${KUSTOMIZE_CONTROLLER_VERSION:-1.9.6}

if [ -n "${FLUX_ASSETS:-}" ] && [ -x "$FLUX_ASSETS/kustomize-controller" ]; then
  echo "$FLUX_ASSETS"
  exit 0
fi

cache=${OPENCODE_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opencode-injector}
dir="$cache/flux/kustomize-controller-$KUSTOMIZE_CONTROLLER_VERSION"
if [ -x "$dir/kustomize-controller" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
echo "flux-assets: building kustomize-controller v$KUSTOMIZE_CONTROLLER_VERSION from the Go module proxy (minutes, once)" >&2
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
mod=$(mktemp -d)
trap 'rm -rf "$mod" "$mod.log"' EXIT
# The build's output is shown only when it fails.
if ! (
  src=$(go mod download -json "github.com/fluxcd/kustomize-controller@v$KUSTOMIZE_CONTROLLER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && cp -r "$src/." "$mod" && chmod -R u+w "$mod" && cd "$mod" &&
    # Its api module is a sibling directory in git, absent from the module's
    # zip: use the published version its go.mod requires.
    go mod edit -dropreplace github.com/fluxcd/kustomize-controller/api &&
    go build -trimpath -ldflags "-s -w" -o "$dir/kustomize-controller.tmp" .
) >"$mod.log" 2>&1; then
  cat "$mod.log" >&2
  echo "flux-assets: building kustomize-controller v$KUSTOMIZE_CONTROLLER_VERSION failed" >&2
  exit 1
fi
mv "$dir/kustomize-controller.tmp" "$dir/kustomize-controller"
echo "$dir"
