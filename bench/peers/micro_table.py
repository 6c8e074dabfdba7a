#!/usr/bin/python3
"""Google Benchmark JSON (kurier-micro --benchmark_out) -> a Markdown table on stdout."""
import json
import sys


def rate(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return "%.2f %s/s" % (value / scale, unit)
    return "%.1f /s" % value


def main():
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    ctx = doc["context"]
    print("# Micro-benchmarks (kurier-micro)\n")
    print("%s, %d CPUs at %.0f MHz, load average %s.\n" % (
        ctx["date"], ctx["num_cpus"], ctx["mhz_per_cpu"], ", ".join("%.1f" % x for x in ctx.get("load_avg", []))))
    print("| benchmark | wall ns/op | CPU ns/op | items/s | bytes/s |")
    print("|---|---:|---:|---:|---:|")
    for b in doc["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        print("| %s | %.0f | %.0f | %s | %s |" % (
            b["name"], b["real_time"], b["cpu_time"],
            rate(b["items_per_second"]) if "items_per_second" in b else "",
            rate(b["bytes_per_second"]).replace("/s", "B/s") if "bytes_per_second" in b else ""))
    print("\nitems/s is per CPU-second for CPU-bound benchmarks and per wall-second for "
          "the queue ones (`/real_time`: fsync-bound).")


if __name__ == "__main__":
    main()
