# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: one clang build of native/core with ASan,
# LeakSanitizer and UBSan (build/fuzz), shared by the C++ tests and the libFuzzer harnesses so
# that each LibTorch-heavy object is compiled once; and the sanitizer settings both runs use.
# Debian 12: apt-get install clang-14 libclang-rt-14-dev (libFuzzer and the sanitizer runtimes)
# llvm-14 (llvm-symbolizer, for readable stacks).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build/fuzz"

# Debian 12's clang first (its runtimes are the ones installed with it), else the default one.
clang=$(command -v clang++-14 || command -v clang++ || true)
if [ -z "$clang" ]; then
  echo "$(basename "$0"): no clang++; on Debian 12: apt-get install clang-14 libclang-rt-14-dev llvm-14" >&2
  exit 1
fi

# Configures (first time only) and builds the given targets, incrementally. Like CI's g++ build,
# fails on any compiler warning in our sources.
sanitizer_build() {
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER="$clang" -DCMAKE_BUILD_TYPE=Release \
      -DSIAMESE_TORCH_FUZZ=ON -DSIAMESE_TORCH_CORE_TESTS=ON >/dev/null
  fi
  local log
  log=$(mktemp)
  cmake --build "$build" --parallel "$(nproc)" --target "$@" 2>&1 | tee "$log"
  if grep -E '^[^ ]*native/[^ ]*: warning:' "$log"; then
    echo "$(basename "$0"): clang warnings in our native sources (above)" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[ -z "$symbolizer" ] || export ASAN_SYMBOLIZER_PATH="$symbolizer"
# Leaks are reported (only LibTorch's own one-time allocations may be suppressed, each with its
# reason, in lsan.supp); the first report of any kind ends the run with a non-zero status.
export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$here/test/reliability/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1"
