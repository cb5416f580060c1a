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
log() { echo "flux-assets: $*" >&2; }
buildlog="$dir/build.log"
# quiet runs a build step, showing its output only when it fails.
quiet() {
  if ! "$@" >"$buildlog" 2>&1; then
    cat "$buildlog" >&2
    log "failed: $*"
    return 1
  fi
}

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off

log "building kustomize-controller v$KUSTOMIZE_CONTROLLER_VERSION from the Go module proxy (a few minutes, once)"
module="github.com/fluxcd/kustomize-controller@v$KUSTOMIZE_CONTROLLER_VERSION"
src=$(go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { log "go mod download $module failed"; exit 1; }
mod=$(mktemp -d)
trap 'rm -rf "$mod"' EXIT
cp -r "$src/." "$mod"
chmod -R u+w "$mod"
(
  cd "$mod"
  # Its api module is a sibling directory in git, absent from the module's
  # zip: use the published version its go.mod requires.
  quiet go mod edit -dropreplace github.com/fluxcd/kustomize-controller/api
  quiet go build -trimpath -ldflags "-s -w" -o "$dir/kustomize-controller.tmp" .
)
mv "$dir/kustomize-controller.tmp" "$dir/kustomize-controller"
rm -f "$buildlog"
echo "$dir"
