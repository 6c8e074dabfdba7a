#!/usr/bin/env bash
# Installs dependencies, builds everything with warnings as errors, and runs the
# whole test suite (unit and integration tests against real dnsmasq, Postfix's
# smtp-sink, kurier-sink and RocksDB on loopback / local disk), then the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset relwithdebinfo -DKURIER_WERROR=ON >/dev/null
cmake --build --preset relwithdebinfo
ctest --preset relwithdebinfo --timeout 600 "$@"
# Fuzzing, bounded: each libFuzzer target for KURIER_FUZZ_SECONDS (default 20 s) from
# its seed corpus; a crash fails CI and leaves the reproducer in build/fuzz/crashes/.
./scripts/fuzz.sh "${KURIER_FUZZ_SECONDS:-20}"
