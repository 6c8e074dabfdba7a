#!/usr/bin/env bash
# The demo: installs dependencies, builds kurier (release), starts dnsmasq and a
# kurier-sink on loopback, sends examples/campaign.toml and prints the per-domain
# outcome and the per-recipient report. Everything it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target kurier kurier-sink

build=build/release
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# DNS: the demo zones on 127.0.0.1:5353 (examples/dns.conf), nothing forwarded.
/usr/sbin/dnsmasq -k --conf-file=examples/dns.conf --port=5353 --listen-address=127.0.0.1 \
  --bind-interfaces --no-resolv --no-hosts --pid-file --log-facility="$work/dnsmasq.log" &
pids+=($!)
# MX sinks: shop.test, twomx.test (secondary MX) and aonly.test; 127.0.1.9 (the
# primary MX of twomx.test) deliberately has no listener.
"$build/bench/sink/kurier-sink" --listen 127.0.1.1:2525 --listen 127.0.1.2:2525 --listen 127.0.1.3:2525 \
  --script examples/sink.toml --store "$work/mail" --stats "$work/sink-stats.json" --tls >"$work/sink.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "ready" "$work/sink.log" 2>/dev/null && break
  sleep 0.05
done

rm -rf var/demo-queue  # a fresh queue each demo run
echo "== kurier send examples/campaign.toml"
"$build/engine/kurier" send examples/campaign.toml --config examples/kurier.toml --wait
echo
echo "== kurier report demo-newsletter"
"$build/engine/kurier" report demo-newsletter --config examples/kurier.toml
echo
stored=$(find "$work/mail" -name '*.eml' | wc -l)
echo "== the sinks stored $stored messages"
