#!/usr/bin/env bash
# Installs dependencies, builds everything with warnings as errors, and runs the
# whole test suite (unit and integration tests against real dnsmasq, Postfix's
# smtp-sink, kurier-sink and RocksDB on loopback / local disk).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset relwithdebinfo -DKURIER_WERROR=ON >/dev/null
cmake --build --preset relwithdebinfo
ctest --preset relwithdebinfo --timeout 600 "$@"
