#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for wirepool, its demo and its tests
# (as root), then builds it with `npm ci`. Safe to run again.
#   - Node.js: the version package.json's engines asks for (>= 20) must already be installed;
#     Debian 12's own nodejs package is 18, too old (take Node 20+ from nodejs.org or NodeSource).
#   - node-gyp (the native addons) needs a C/C++ compiler, make and python3.
#   - prometheus (with promtool) only for the test suite (`npm test` runs this script as its
#     "test" lifecycle event); on a systemd host Debian's package also starts a prometheus
#     service on port 9090, which the tests do not need (`systemctl disable --now prometheus`).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=$(sed -n 's/.*"node": *">= *\([0-9][0-9]*\).*/\1/p' package.json)
if ! command -v node >/dev/null; then
  echo "setup: Node.js >= $need is needed and node is not on PATH (Debian 12's nodejs package is 18: use nodejs.org or NodeSource)" >&2
  exit 1
fi
have=$(node -p 'process.versions.node.split(".")[0]')
if ((have < need)); then
  echo "setup: Node.js $(node --version) is too old; wirepool needs >= $need (Debian 12's nodejs package is 18: use nodejs.org or NodeSource)" >&2
  exit 1
fi

PKGS=(wireguard-go wireguard-tools iperf3 iputils-ping iproute2 procps socat)
if [[ ${npm_lifecycle_event:-} == test ]]; then PKGS+=(prometheus); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node-gyp's tools, by command (python3 may come from elsewhere than apt, e.g. pyenv).
declare -A TOOL_PKG=([cc]=gcc [c++]=g++ [make]=make [python3]=python3)
for tool in cc c++ make python3; do
  command -v "$tool" >/dev/null || missing+=("${TOOL_PKG[$tool]}")
done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
