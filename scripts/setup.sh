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

npm ci --no-audit --no-fund
