#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu clone needs before the first run: the system packages that are
# missing (LibTorch, Gloo's headers for distributed training, zlib, a C++ toolchain, CMake;
# Debian's PyTorch for the side-by-side scripts and torchrun), then npm ci, which builds the addon
# and the TypeScript. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(libtorch-dev libgloo-dev zlib1g-dev python3-torch g++ make cmake python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# better-sqlite3 (galleries) builds from source with node-gyp where its prebuilt binaries cannot be
# downloaded; node-gyp then needs Node's headers, which Debian's and NodeSource's node ship:
# point it at them rather than let it download them.
if [ -z "${npm_config_nodedir:-}" ] && [ "$(npm config get nodedir)" = "undefined" ]; then
  prefix=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$prefix/include/node/common.gypi" ] && export npm_config_nodedir="$prefix"
fi
npm ci --no-audit --no-fund
