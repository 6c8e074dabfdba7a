#!/usr/bin/env bash
# Builds a sanitizer preset and runs its tests: `asan` (ASan+UBSan, the whole suite;
# every kurier / kurier-sink the tests start is instrumented too) or `tsan`
# (ThreadSanitizer; meant for the concurrent parts: -L 'engine|integration|sink').
#   scripts/sanitize.sh asan
#   scripts/sanitize.sh tsan -L 'engine|integration'
# Any report fails the run (halt_on_error), so a child process's report fails its test.
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${1:?usage: scripts/sanitize.sh asan|tsan [ctest args]}"
shift
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "${KURIER_SANITIZE_JOBS:-2}"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/sanitizers/tsan.supp"
ctest --preset "$preset" --timeout 900 "$@"
