#!/usr/bin/env bash
# The benchmarks in one command: installs what they need (Debian packages, Haraka from
# npm into the git-ignored bench/.peers/), builds kurier (release), then runs
#   1. the 1,000,000-recipient queue scale run -> bench/results/queue_scale.json
#   2. the micro-benchmarks (Google Benchmark) -> bench/results/micro.{json,md}
#   3. the side-by-side delivery comparison (bench/peers/compare.py):
#      ceiling (smtp-source) / kurier (plain, DKIM rsa-sha256, DKIM ed25519) /
#      Postfix (submitted live, and with its queue filled first) / Haraka
#      -> bench/results/peers.{json,md,png}, which also carry the results of 1 and 2
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
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
# Haraka 3.1.7 and later need Node.js 20; Debian 12's nodejs is 18, which gets 3.1.0
# (Node.js >= 18). The figures in bench/results/ are from Haraka 3.3 on Node.js 20.
haraka=Haraka@3
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then haraka=Haraka@3.1.0; fi
peers=bench/.peers/haraka
if [ ! -x "$peers/node_modules/.bin/haraka" ]; then
  mkdir -p "$peers"
  [ -f "$peers/package.json" ] || echo '{"name":"kurier-bench-haraka","private":true}' >"$peers/package.json"
  (cd "$peers" && npm install --no-audit --no-fund --silent "$haraka")
fi

# KURIER_BENCH_BUILD=DIR uses an existing, configured build tree instead of the
# release preset (the figures in bench/results/ say which build they came from).
build=${KURIER_BENCH_BUILD:-build/release}
if [ -z "${KURIER_BENCH_BUILD:-}" ]; then cmake --preset release >/dev/null; fi
cmake --build "$build" --target kurier kurier-sink kurier-micro kurier-queue-scale
mkdir -p bench/results

# Scale and micro-benchmarks first: they measure kurier alone and take a minute or
# two; the comparison then adds their results to bench/results/peers.{json,md}.
peers_args=()
if [ -z "$only" ] || [ "$only" = scale ]; then
  recipients=1000000
  if [ "$quick" = 1 ]; then recipients=100000; fi
  timeout 900 "$build/bench/kurier-queue-scale" --recipients "$recipients" --out bench/results/queue_scale.json
  peers_args+=(--scale bench/results/queue_scale.json)
fi
if [ -z "$only" ] || [ "$only" = micro ]; then
  timeout 900 "$build/bench/kurier-micro" --benchmark_out=bench/results/micro.json --benchmark_out_format=json
  /usr/bin/python3 bench/peers/micro_table.py bench/results/micro.json >bench/results/micro.md
  peers_args+=(--micro bench/results/micro.md)
fi
if [ -z "$only" ] || [ "$only" = peers ]; then
  if [ "$quick" = 1 ]; then args=(--messages 2000 --domains 10 "${args[@]}"); fi
  # Bounded: compare.py gives each system at most --timeout seconds (default 600).
  /usr/bin/python3 bench/peers/compare.py --build "$build" --out bench/results "${peers_args[@]}" "${args[@]}"
fi
echo "run-peers.sh: results in bench/results/"
