#!/usr/bin/env bash
# Fuzzes native/core's file readers with libFuzzer under ASan, LeakSanitizer and UBSan, without
# Node: native/fuzz/fuzz_idx.cc (IDX images and labels, raw and gzipped) and fuzz_model.cc (the
# safetensors header and the whole model loader). Both run side by side for SECONDS (default 60),
# each from a fresh copy of its committed seed corpus (test/reliability/corpus/). Fails on any
# crash, sanitizer report, leak, input slower than 10 s, or allocation over 512 MB; the input that
# did it is kept in build/fuzz/run/<harness>/ (add it to the corpus as regression-<what> once fixed).
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
seconds=${1:-60}
source "$(dirname "${BASH_SOURCE[0]}")/sanitizer-build.sh"

sanitizer_build fuzz_idx fuzz_model

harnesses=(idx model)
run="$build/run"
rm -rf "$run"
declare -A pids
for h in "${harnesses[@]}"; do
  mkdir -p "$run/$h/corpus"
  cp "$here/test/reliability/corpus/$h/"* "$run/$h/corpus/"
  # New inputs go to the copy; the committed seeds are read-only to the run.
  "$build/fuzz_$h" "$run/$h/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -dict="$here/test/reliability/$h.dict" -artifact_prefix="$run/$h/" -print_final_stats=1 >"$run/$h/log" 2>&1 &
  pids[$h]=$!
done

failed=0
for h in "${harnesses[@]}"; do
  status=0
  wait "${pids[$h]}" || status=$?
  log="$run/$h/log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  cov=$(sed -E -n 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)\/.*/\1 edges, \2 features, \3 inputs in the corpus/p' <<<"$done_line")
  artifacts=$(find "$run/$h" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  if [ "$status" -ne 0 ] || [ -n "$artifacts" ]; then
    failed=1
    echo "fuzz_$h: FAILED (exit status $status) after ${runs:-?} runs" >&2
    tail -n 60 "$log" >&2
    [ -z "$artifacts" ] || echo "fuzz_$h: the input that failed: $artifacts" >&2
  else
    echo "fuzz_$h: ${runs:-?} runs in $seconds s ($((${runs:-0} / seconds))/s), coverage ${cov:-unknown}"
  fi
done
exit "$failed"
