#!/usr/bin/env bash
# Makes sure the programs the test suite runs beside Go are there: git (the
# seed tests' git http-backend), strace (the real-OpenCode test's check that
# nothing is written outside the claim), npm (it installs opencode-ai),
# prometheus (it runs the dashboard's queries against the injector's metrics), and
# for the real-node suite (test/node) the CNI plugins, iproute2, iptables,
# and containerd and runc pinned to Debian 12's exact versions (containerd
# 1.6 and cgroup v1 are supported upstream up to Kubernetes 1.35 only).
# Missing ones are installed from Debian's packages when running as root;
# otherwise this says what to install and the tests that need them say why
# they cannot run (in CI, CI=true, they fail).
set -euo pipefail

# The node suite's container runtime, exactly (test/node reads these lines
# and fails when `containerd --version` or `runc --version` differs).
containerd_version=1.6.20~ds1-1+deb12u3
runc_version=1.1.5+ds1-1+deb12u1

declare -A package=(
  [git]=git [strace]=strace [npm]=npm [prometheus]=prometheus
  [ip]=iproute2 [iptables]=iptables
  [/usr/lib/cni/bridge]=containernetworking-plugins
)
missing=()
for cmd in git strace npm prometheus ip iptables /usr/lib/cni/bridge; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package[$cmd]}")
done
# containerd and runc: absent or another version, the pinned one.
installed() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
[ "$(installed containerd)" = "$containerd_version" ] || missing+=("containerd=$containerd_version")
[ "$(installed runc)" = "$runc_version" ] || missing+=("runc=$runc_version")
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]} from Debian's packages" >&2
  apt-get update -qq >/dev/null
  # No service is started (invoke-rc.d asks policy-rc.d; 101 is "action
  # forbidden"): the node suite runs its own containerd.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}" >/dev/null
else
  echo "test-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
fi
