#!/usr/bin/env bash
# The benchmarks in one command: installs what they need (Debian packages, Haraka from
# npm into the git-ignored bench/.peers/), builds kurier (release), then runs
#   1. the side-by-side delivery comparison (bench/peers/compare.py):
#      ceiling (smtp-source) / kurier (plain, DKIM rsa-sha256, DKIM ed25519) /
#      Postfix (submitted live, and with its queue filled first) / Haraka
#      -> bench/results/peers.{json,md,png}
#   2. the 1,000,000-recipient queue scale run -> bench/results/queue_scale.json
#   3. the micro-benchmarks (Google Benchmark) -> bench/results/micro.{json,md}
# Usage: bench/run-peers.sh [--quick] [--only peers|scale|micro] [compare.py options...]
#   --quick: 2,000 messages over 10 domains, 100,000 queued recipients (development).
# Needs root (smtp-sink on port 25, dnsmasq on port 53, a private Postfix instance),
# loopback only; everything started is stopped by PID. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
only=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
if [ "$(id -u)" != 0 ]; then
  echo "run-peers.sh: needs root (ports 25 and 53 on 127.77.0.0/16, a private Postfix instance)" >&2
  exit 1
fi

./scripts/install-deps.sh
# Haraka runs on Node.js: Debian's nodejs/npm unless a Node.js is already installed.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
peers=bench/.peers/haraka
if [ ! -x "$peers/node_modules/.bin/haraka" ]; then
  mkdir -p "$peers"
  [ -f "$peers/package.json" ] || echo '{"name":"kurier-bench-haraka","private":true}' >"$peers/package.json"
  (cd "$peers" && npm install --no-audit --no-fund --silent Haraka@3)
fi

# KURIER_BENCH_BUILD=DIR uses an existing, configured build tree instead of the
# release preset (the figures in bench/results/ say which build they came from).
build=${KURIER_BENCH_BUILD:-build/release}
if [ -z "${KURIER_BENCH_BUILD:-}" ]; then cmake --preset release >/dev/null; fi
cmake --build "$build" --target kurier kurier-sink kurier-micro kurier-queue-scale
mkdir -p bench/results

if [ -z "$only" ] || [ "$only" = peers ]; then
  if [ "$quick" = 1 ]; then args=(--messages 2000 --domains 10 "${args[@]}"); fi
  # Bounded: compare.py gives each system at most --timeout seconds (default 600).
  /usr/bin/python3 bench/peers/compare.py --build "$build" --out bench/results "${args[@]}"
fi
if [ -z "$only" ] || [ "$only" = scale ]; then
  recipients=1000000
  if [ "$quick" = 1 ]; then recipients=100000; fi
  timeout 900 "$build/bench/kurier-queue-scale" --recipients "$recipients" --out bench/results/queue_scale.json
fi
if [ -z "$only" ] || [ "$only" = micro ]; then
  timeout 900 "$build/bench/kurier-micro" --benchmark_out=bench/results/micro.json --benchmark_out_format=json
  /usr/bin/python3 bench/peers/micro_table.py bench/results/micro.json >bench/results/micro.md
fi
echo "run-peers.sh: results in bench/results/"
