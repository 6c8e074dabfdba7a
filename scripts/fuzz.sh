#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build/fuzz,
# then runs each for SECONDS (default 20) starting from its seed corpus
# tests/fuzz/corpus/<target> (copied: the committed seeds stay as they are). Prints
# executions and crashes per target; exits 1 if any target crashed, keeping the
# reproducer in build/fuzz/crashes/<target>/ (turn it into a unit test, fix the bug).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: reply csv verp template bounce
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(reply csv verp template bounce)
build=build/fuzz
jobs="${KURIER_FUZZ_JOBS:-2}"

cmake --preset fuzz >/dev/null  # clang-14, KURIER_FUZZ=ON, binary dir build/fuzz
cmake --build "$build" -j "$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}")

failed=0
printf '%-10s %12s %10s %8s\n' target executions corpus crashes
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  crashes="$build/crashes/$t"
  rm -rf "$work" "$crashes"
  mkdir -p "$work" "$crashes"
  cp tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  log="$build/$t.log"
  status=0
  # -rss_limit_mb: a target that balloons is a finding too; -timeout: same for a hang.
  "$build/tests/fuzz/fuzz_$t" "$work" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  found=$(find "$crashes" -type f | wc -l)
  printf '%-10s %12s %10s %8s\n' "$t" "${execs:-0}" "$(find "$work" -type f | wc -l)" "$found"
  if [ "$status" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed=1
    echo "fuzz_$t failed (exit $status); log: $log" >&2
    grep -m5 -E 'ERROR|SUMMARY|runtime error' "$log" >&2 || true
  fi
done
exit "$failed"
