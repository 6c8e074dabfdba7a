#!/usr/bin/env bash
# DKIM signing speed next to `openssl speed` on the same machine, one core each.
#
#   bench/dkim_vs_openssl.sh [path/to/kurier-dkim-bench]
#
# Runs kurier-dkim-bench (rsa-sha256-2048 and ed25519-sha256 on a 5 KB message, both
# backends) and `openssl speed -seconds 3 rsa2048 ed25519`, then writes
# bench/results/dkim.json and bench/results/dkim.md with signatures/s and the ratio
# kurier/openssl per algorithm (target: >= 0.8). Both tools divide by CPU time (Google
# Benchmark's default, openssl speed's default without -elapsed), so other load on a
# shared machine disturbs the figures less. kurier's figure includes what openssl's
# does not: relaxed canonicalisation and SHA-256 of the 5 KB message and the header.
# Without an argument it builds the release preset's binary first.
set -euo pipefail
cd "$(dirname "$0")/.."

bench="${1:-}"
if [ -z "$bench" ]; then
  bench=build/release/bench/kurier-dkim-bench
  [ -f build/release/build.ninja ] || cmake --preset release >/dev/null
  cmake --build --preset release --target kurier-dkim-bench >/dev/null
fi
[ -x "$bench" ] || { echo "dkim_vs_openssl: $bench is not an executable" >&2; exit 2; }

mkdir -p bench/results
work="$(mktemp -d /tmp/kurier-dkim-vs-openssl-XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "dkim_vs_openssl: running $bench" >&2
"$bench" --benchmark_min_time=3 --benchmark_format=json >"$work/kurier.json"

echo "dkim_vs_openssl: running openssl speed -seconds 3 rsa2048 ed25519" >&2
openssl speed -seconds 3 rsa2048 ed25519 >"$work/openssl.txt" 2>/dev/null

python3 - "$work/kurier.json" "$work/openssl.txt" "$(openssl version)" <<'PY'
import json, re, sys, datetime, platform

kurier = json.load(open(sys.argv[1]))
openssl_text = open(sys.argv[2]).read()
openssl_version = sys.argv[3]

# "rsa 2048 bits 0.000650s 0.000019s   1538.5  52631.6": sign/s is the 3rd number.
rsa = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", openssl_text, re.M)
# " 253 bits EdDSA (Ed25519)   0.0000s   0.0001s  22651.6   8417.4"
ed = re.search(r"EdDSA \(Ed25519\)\s+\S+\s+\S+\s+([\d.]+)", openssl_text, re.M)
if not rsa or not ed:
    sys.exit("dkim_vs_openssl: cannot read openssl speed output:\n" + openssl_text)
openssl = {"rsa-sha256-2048": float(rsa.group(1)), "ed25519-sha256": float(ed.group(1))}

names = {
    "BM_DkimSign_Rsa2048_Native": ("rsa-sha256-2048", "native"),
    "BM_DkimSign_Rsa2048_Opendkim": ("rsa-sha256-2048", "opendkim"),
    "BM_DkimSign_Ed25519_Native": ("ed25519-sha256", "native"),
    "BM_DkimSign_Ed25519_Opendkim": ("ed25519-sha256", "opendkim"),
}
rows = []
for b in kurier["benchmarks"]:
    if b["name"] not in names:
        continue
    algorithm, backend = names[b["name"]]
    per_s = float(b["items_per_second"])
    rows.append({
        "algorithm": algorithm,
        "backend": backend,
        "message_bytes": int(b.get("message_bytes", 0)),
        "signatures_per_second": round(per_s, 1),
        "cpu_us_per_signature": round(1e6 / per_s, 1),
        "openssl_speed_signs_per_second": openssl[algorithm],
        "ratio_to_openssl": round(per_s / openssl[algorithm], 3),
        "meets_target_0_8": per_s / openssl[algorithm] >= 0.8,
    })
context = kurier.get("context", {})
result = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "host": {"cpus": context.get("num_cpus"), "mhz": context.get("mhz_per_cpu"),
             "load_avg": context.get("load_avg"), "machine": platform.machine()},
    "openssl": openssl_version,
    "default_backend": "native",
    "results": rows,
}
json.dump(result, open("bench/results/dkim.json", "w"), indent=2)

with open("bench/results/dkim.md", "w") as md:
    md.write("# DKIM signing vs `openssl speed` (one core)\n\n")
    md.write("Measured %s on %s CPUs at %s MHz, load average %s; %s.\n"
             "kurier: `kurier-dkim-bench` (5 KB message, relaxed/relaxed, 10 signed header fields);\n"
             "openssl: `openssl speed -seconds 3 rsa2048 ed25519` (a bare signature of a digest).\n"
             "Both per CPU second.\n\n" % (result["date"], result["host"]["cpus"], result["host"]["mhz"],
                                            result["host"]["load_avg"], openssl_version))
    md.write("| algorithm | backend | kurier sig/s | openssl sig/s | kurier/openssl | target 0.8 |\n")
    md.write("|---|---|---:|---:|---:|---|\n")
    for r in rows:
        md.write("| %s | %s | %.0f | %.0f | %.2f | %s |\n" % (
            r["algorithm"], r["backend"], r["signatures_per_second"], r["openssl_speed_signs_per_second"],
            r["ratio_to_openssl"], "met" if r["meets_target_0_8"] else "not met"))
    md.write("\nThe default backend is `native` (dkim/native_signer.cpp): libopendkim parses the PEM\n"
             "key again for every message, which costs more than the signature itself.\n")
print(open("bench/results/dkim.md").read())
PY
