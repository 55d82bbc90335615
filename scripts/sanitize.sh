#!/usr/bin/env bash
# native/core's C++ tests (native/test/core_tests.cc, over the same sources as the addon) built
# with clang under AddressSanitizer, LeakSanitizer and UBSan, without Node. Fails on any report:
# ASan and UBSan stop at the first one, leaks fail the exit status (suppressions, each explained:
# test/reliability/lsan.supp).
#   bash scripts/sanitize.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sanitizer-build.sh"

sanitizer_build core_tests

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"$build/core_tests" 2>&1 | tee "$log" || status=$?
# A report is a failure even if it did not reach the exit status.
if [ "$status" -ne 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
  echo "sanitize: core_tests failed under the sanitizers (exit status $status)" >&2
  exit 1
fi
echo "sanitize: no sanitizer reports"
