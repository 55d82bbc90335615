#!/usr/bin/env bash
# Run here, before spending device time: gathers what scripts/gpu/run.sh needs on a GPU machine
# that has no Node and no internet, into build/gpu-carry (ignored by git), and prints the device
# call to make. What travels: the working tree, plus the carried paths below (64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
carry=build/gpu-carry
mkdir -p "$carry/include"
npm run build:ts >/dev/null   # dist/: the package's JS and the embedded digits
node_bin=$(command -v node)
if [[ ! -f $carry/node.xz || $node_bin -nt $carry/node.xz ]]; then
  echo "compressing $node_bin ($(node -v)) ..."
  xz -T0 -6 -c "$node_bin" >"$carry/node.xz.tmp" && mv "$carry/node.xz.tmp" "$carry/node.xz"
fi
# zlib's headers, in case the GPU machine lacks zlib1g-dev (its libz.so.1 is always there).
cp /usr/include/zlib.h /usr/include/zconf.h "$carry/include/"
total=$(du -cb "$carry" dist node_modules/node-addon-api node_modules/node-api-headers \
  $(git ls-files) 2>/dev/null | tail -1 | cut -f1)
echo "travels: $((total / 1024 / 1024)) MiB of the 64 MiB allowed"
if ((total > 60 * 1024 * 1024)); then echo "too large to travel" >&2; exit 1; fi
cat <<'CALL'
device run:
  carry:   ["dist", "node_modules/node-addon-api", "node_modules/node-api-headers", "build/gpu-carry"]
  command: bash scripts/gpu/run.sh
  timeout_s: 540
CALL
