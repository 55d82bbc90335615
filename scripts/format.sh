#!/usr/bin/env bash
# Formats native/ with clang-format 14 (.clang-format); with --check, changes nothing and fails
# when a file is not formatted (CI). Debian: apt-get install clang-format-14.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
format=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$format" ]; then
  echo "format: clang-format-14 is not installed (apt-get install clang-format-14)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files 'native/*.cc' 'native/*.h')
if [ "${1:-}" = "--check" ]; then
  "$format" --dry-run --Werror "${files[@]}"
else
  "$format" -i "${files[@]}"
fi
