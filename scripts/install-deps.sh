#!/usr/bin/env bash
# Installs every Debian 12 package kurier needs to build, test and benchmark.
# Idempotent and noninteractive; run as root (or via sudo). Starts no system service.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates
  # libraries
  libboost1.74-dev libssl-dev libc-ares-dev libopendkim-dev librocksdb-dev
  libspdlog-dev libfmt-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  libgmime-3.0-dev libidn2-dev
  libcurl4-openssl-dev  # webhooks (engine/events/webhook.cpp)
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  dnsmasq-base postfix python3 python3-dkim libmail-dkim-perl
  # DKIM verifiers in tests/dkim: ed25519 (python3-nacl, libcryptx-perl), keys from
  # dnsmasq (python3-dnspython, libnet-dns-perl); test keys and bench/dkim_vs_openssl.sh (openssl)
  python3-nacl python3-dnspython libcryptx-perl libnet-dns-perl openssl
  # bench/run-peers.sh: the chart (python3-matplotlib), profiles (linux-perf)
  python3-matplotlib linux-perf
  postgrey  # greylisting policy server for tests/integration/greylist_test.cpp
  util-linux mount  # disk_fault_test: unshare/nsenter + a tmpfs queue in a private mount namespace
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer targets with ASan+UBSan
  # kurier serve's tests: a real Prometheus scrapes /metrics, headless Chromium renders the dashboard
  prometheus chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

# Postfix must not configure or start a system instance: tests run their own.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string kurier.invalid" | $SUDO debconf-set-selections

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian postfix package may enable the service; the project never uses it.
$SUDO systemctl disable --now postfix >/dev/null 2>&1 || true
$SUDO systemctl disable --now postgrey >/dev/null 2>&1 || true  # tests run their own
# Likewise Prometheus (tests run their own on a private port): only when this run
# installed it, so an operator's own Prometheus service is never touched.
for p in "${missing[@]}"; do
  if [ "$p" = prometheus ]; then $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
done
echo "install-deps: installed ${#missing[@]} packages"
