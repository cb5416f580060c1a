#!/usr/bin/env bash
# Builds kube-apiserver and etcd for envtest from the Go module proxy (prebuilt
# downloads are not reachable here) and prints the directory that holds them,
# for KUBEBUILDER_ASSETS. Results are cached; a set KUBEBUILDER_ASSETS wins.
# With --node it also builds what a real node needs (test/node): kubelet,
# kube-controller-manager and kube-scheduler, at the same version (one DNAT
# rule stands in for kube-proxy, see test/node).
set -euo pipefail

node_cmds=()
if [ "${1:-}" = "--node" ]; then
  node_cmds=(kubelet kube-controller-manager kube-scheduler)
fi

K8S_VERSION=${K8S_VERSION:-1.35.8}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}

# has_all DIR: every binary this run needs is in DIR.
has_all() {
  local bin
  for bin in etcd kube-apiserver "${node_cmds[@]}"; do
    [ -x "$1/$bin" ] || return 1
  done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache=${OPENCODE_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opencode-injector}
dir="$cache/envtest/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
mkdir -p "$dir"
log() { echo "envtest-assets: $*" >&2; }
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

build_etcd() {
  [ -x "$dir/etcd" ] && return
  log "building etcd v$ETCD_VERSION from the Go module proxy (about a minute, once)"
  local mod; mod=$(mktemp -d)
  (
    cd "$mod"
    quiet go mod init envtest-etcd
    quiet go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    quiet go build -trimpath -ldflags "-s -w" -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$dir/etcd.tmp" "$dir/etcd"
  rm -rf "$mod"
}

# build_kubernetes CMD...: the named k8s.io/kubernetes/cmd programs that are
# not built yet, in one go build so they share its work.
build_kubernetes() {
  local cmds=() cmd
  for cmd in "$@"; do
    [ -x "$dir/$cmd" ] || cmds+=("$cmd")
  done
  [ ${#cmds[@]} -eq 0 ] && return
  log "building ${cmds[*]} v$K8S_VERSION from the Go module proxy (a few minutes, once)"
  local mod staging gomod minor
  mod=$(mktemp -d)
  minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  staging="0.${K8S_VERSION#*.}"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  (
    cd "$mod"
    {
      echo "module envtest-kubernetes"
      echo
      echo "go 1.25"
      echo
      echo "require k8s.io/kubernetes v$K8S_VERSION"
      echo
      # k8s.io/kubernetes points its staging modules at ./staging; point them at the published versions.
      sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9.-]*\) => \./staging/.*#replace \1 => \1 v'"$staging"'#p' "$gomod"
    } >go.mod
    local pkgs=()
    for cmd in "${cmds[@]}"; do
      pkgs+=("k8s.io/kubernetes/cmd/$cmd")
      quiet go get "k8s.io/kubernetes/cmd/$cmd@v$K8S_VERSION"
    done
    local x="" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      x="$x -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      x="$x -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir out
    quiet go build -trimpath -ldflags "-s -w $x" -o out/ "${pkgs[@]}"
  )
  for cmd in "${cmds[@]}"; do
    mv "$mod/out/$cmd" "$dir/$cmd"
  done
  rm -rf "$mod"
}

build_etcd
build_kubernetes kube-apiserver "${node_cmds[@]}"
rm -f "$buildlog"
echo "$dir"
