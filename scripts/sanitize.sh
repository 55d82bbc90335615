#!/usr/bin/env bash
# native/core's C++ tests (native/test/core_tests.cc, over the same sources as the addon) built
# with clang under AddressSanitizer, LeakSanitizer and UBSan, without Node. Fails on any report:
# ASan and UBSan stop at the first one, leaks fail the exit status (suppressions, each explained:
# test/reliability/lsan.supp). Then native/test/race_tests.cc under ThreadSanitizer: the values a
# model shares between its training thread and inference.
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

# ThreadSanitizer: its own build folder (TSan and ASan do not mix), only the sources it needs.
tsan="$here/build/tsan"
if [ ! -f "$tsan/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$tsan" -DCMAKE_CXX_COMPILER="$clang" -DCMAKE_BUILD_TYPE=Release -DSIAMESE_TORCH_TSAN=ON >/dev/null
fi
cmake --build "$tsan" --parallel "$(nproc)" --target race_tests 2>&1 | tee "$log"
if grep -E '^[^ ]*native/[^ ]*: warning:' "$log"; then
  echo "sanitize: clang warnings in our native sources (above)" >&2
  exit 1
fi
status=0
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$tsan/race_tests" 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ] || grep -q 'WARNING: ThreadSanitizer' "$log"; then
  echo "sanitize: race_tests failed under ThreadSanitizer (exit status $status)" >&2
  exit 1
fi
echo "sanitize: no sanitizer reports"
