#!/usr/bin/env bash
# Makes sure the programs the test suite runs beside Go are there: git (the
# seed tests' git http-backend), strace (the real-OpenCode test's check that
# nothing is written outside the claim), npm (it installs opencode-ai),
# prometheus (it runs the dashboard's queries against the injector's metrics), and
# for the real-node suite (test/node) containerd, runc, the CNI plugins,
# iproute2 and iptables, pinned to Debian 12's versions (containerd 1.6 and
# cgroup v1 are supported upstream up to Kubernetes 1.35 only).
# Missing ones are installed from Debian's packages when running as root;
# otherwise this says what to install and the tests that need them say why
# they cannot run (in CI, CI=true, they fail).
set -euo pipefail

declare -A package=(
  [git]=git [strace]=strace [npm]=npm [prometheus]=prometheus
  [containerd]=containerd [runc]=runc [ip]=iproute2 [iptables]=iptables
  [/usr/lib/cni/bridge]=containernetworking-plugins
)
missing=()
for cmd in git strace npm prometheus containerd runc ip iptables /usr/lib/cni/bridge; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]} from Debian's packages" >&2
  apt-get update -qq >/dev/null
  # No service is started: the node suite runs its own containerd.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "test-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
fi
