#!/usr/bin/env bash
# Compiles every native source (-fsyntax-only, -Wall -Wextra -Werror) against LibTorch 2.6 headers
# from Debian 13 (trixie): once against libtorch-dev (CPU) and once against libtorch-cuda-dev with
# SIAMESE_TORCH_CUDA on and the CUDA toolkit headers. Both with c10d's distributed code on (Gloo's
# headers: this system's libgloo-dev), the CUDA one with its NCCL back-end too (libnccl-dev's
# nccl.h). GPU machines run torch 2.x; this keeps our code valid there although this machine has
# LibTorch 1.13.
#
# The packages are downloaded with apt-get download into a private apt state (the system's apt
# configuration is not touched) and unpacked with dpkg -x into a cache folder: never installed,
# since their libraries need a newer libc. Cache: $SIAMESE_TORCH_CACHE, else
# ${XDG_CACHE_HOME:-~/.cache}/siamese-torch. With --fetch-only it downloads and unpacks them, and
# stops there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SIAMESE_TORCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/siamese-torch}/torch26
packages=(libtorch-dev libtorch-cuda-dev nvidia-cuda-dev libcu++-dev libnccl-dev)

# The Debian mirror this machine already uses, so that nothing new is named here.
debian_mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && u != "" && $0 !~ /security/ { print u; exit }' \
      /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "check-torch26: no Debian mirror found in /etc/apt" >&2; return 1; }
  echo "$uri"
}

fetch_headers() {
  local apt="$cache/apt" debs="$cache/debs"
  rm -rf "$cache" && mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) trixie main contrib non-free" \
    > "$apt/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root -o "APT::Architecture=$(dpkg --print-architecture)"
  )
  echo "check-torch26: downloading ${packages[*]} (trixie) into $cache"
  apt-get "${opts[@]}" -qq update
  (cd "$debs" && apt-get "${opts[@]}" -qq download "${packages[@]}")
  dpkg -x "$debs"/libtorch-dev_*.deb "$cache/cpu"
  dpkg -x "$debs"/libtorch-cuda-dev_*.deb "$cache/cuda"
  dpkg -x "$debs"/libcu++-dev_*.deb "$cache/cuda-toolkit"
  # nvidia-cuda-dev is 900 MB of libraries; only its headers are needed.
  dpkg-deb --fsys-tarfile "$debs"/nvidia-cuda-dev_*.deb | tar -x -C "$cache/cuda-toolkit" --wildcards './usr/include/*'
  # libnccl-dev likewise (110 MB): nccl.h, for c10d's NCCL back-end (native/core/distributed.cc).
  mkdir -p "$cache/nccl"
  dpkg-deb --fsys-tarfile "$debs"/libnccl-dev_*.deb | tar -x -C "$cache/nccl" --wildcards './usr/include/*'
  (cd "$debs" && ls) > "$cache/stamp"
  rm -rf "$debs" "$apt"
}

# A cache from before a package joined the list is fetched again.
if [ ! -f "$cache/stamp" ] || ! (for p in "${packages[@]}"; do grep -q "^${p}_" "$cache/stamp" || exit 1; done); then
  fetch_headers
fi
# --fetch-only: the download alone (CI starts it in the background while it builds).
if [ "${1:-}" = --fetch-only ]; then
  echo "check-torch26: LibTorch 2.6 headers ready in $cache"
  exit 0
fi

node_api=$(cd "$here" && node -p "require('node-api-headers').include_dir")
addon_api=$(cd "$here" && node -p "require('node-addon-api').include_dir")
mapfile -t sources < <(grep -v '^\s*$' "$here/native/sources.txt")

cpu=$cache/cpu/usr/include
cuda=$cache/cuda/usr/include
common=(-std=c++17 -Wall -Wextra -Werror
  -D_GLIBCXX_USE_CXX11_ABI=1 -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DUSE_C10D_GLOO -DSIAMESE_TORCH_C10D
  -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED -DSIAMESE_TORCH_LIBTORCH_SOURCE=system
  -isystem "$node_api" -isystem "$addon_api")
flavour_flags() {
  if [ "$1" = cpu ]; then
    echo -isystem "$cpu" -isystem "$cpu/torch/csrc/api/include"
  else
    echo -DSIAMESE_TORCH_CUDA -DUSE_C10D_NCCL -DSIAMESE_TORCH_NCCL -isystem "$cuda" -isystem "$cuda/torch/csrc/api/include" \
      -isystem "$cache/cuda-toolkit/usr/include" -isystem "$cache/nccl/usr/include"
  fi
}

# A syntax check is mostly the parsing of <torch/torch.h>, so each flavour parses it once, into a
# precompiled header that every compile of that flavour loads first (-include; same flags, so
# -Winvalid-pch never fires). That halves this step. The main build, against this machine's
# LibTorch, is what catches a source that forgets an include.
pch=$(mktemp -d)
trap 'rm -rf "$pch"' EXIT

# One compile (g++ "$@"), labelled; fails on any error or warning, and when a LibTorch header comes
# from the system's own LibTorch (/usr/include) instead of the 2.6 tree.
check() {
  local label=$1; shift
  local log
  log=$(mktemp)
  if ! g++ -H "${common[@]}" "$@" 2>"$log"; then
    grep -v '^[.!x]\+ \|^Multiple include guards\|^/' "$log" >&2 || true
    echo "FAIL $label" >&2
    rm -f "$log"
    return 1
  fi
  if grep -qE '^\.+ /usr/include/(torch|ATen|c10|caffe2)/' "$log"; then
    grep -E '^\.+ /usr/include/(torch|ATen|c10|caffe2)/' "$log" | head -3 >&2
    echo "FAIL $label: a LibTorch header came from /usr/include, not from 2.6" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "ok   $label"
}

jobs=$(nproc)
failures=$(mktemp)
for flavour in cpu cuda; do
  echo '#include <torch/torch.h>' > "$pch/$flavour.h"
  # shellcheck disable=SC2046 # flavour_flags is a list of words
  ( check "torch 2.6 $flavour <torch/torch.h>, precompiled" $(flavour_flags $flavour) -x c++-header "$pch/$flavour.h" \
      -o "$pch/$flavour.h.gch" || echo "precompiled $flavour" >> "$failures" ) &
done
wait
for source in "${sources[@]}"; do
  for flavour in cpu cuda; do
    # One compile a core, in the background; each failure is noted in $failures.
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    # shellcheck disable=SC2046
    ( check "torch 2.6 $(printf %-4s $flavour) $source" $(flavour_flags $flavour) -fsyntax-only -Winvalid-pch \
        -include "$pch/$flavour.h" "$here/$source" || echo "$source $flavour" >> "$failures" ) &
  done
done
wait
if [ -s "$failures" ]; then
  echo "check-torch26: $(wc -l < "$failures") compile(s) failed against LibTorch 2.6" >&2
  rm -f "$failures"
  exit 1
fi
rm -f "$failures"
echo "check-torch26: every native source compiles against LibTorch 2.6 (CPU and CUDA)"
