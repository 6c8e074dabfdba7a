// Micro-benchmark: the bounce classifier (bounce/bounce.h) — per inline reply, paid
// once per recipient during delivery — and the parser on a DSN and a prose NDR, paid
// once per inbound bounce. Single-threaded; results via Google Benchmark's reporters
// (kurier-micro --benchmark_filter=Bounce --benchmark_out=bench/results/bounce.json).
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>
#include <string>

#include "bounce/bounce.h"

namespace {

std::string corpus_file(const char* name) {
  std::ifstream in(std::string(KURIER_SOURCE_DIR) + "/tests/data/bounces/samples/" + name, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A specific code decided by the first patterns vs a text that falls through them all.
void BM_BounceClassifyInline(benchmark::State& state, int code, const char* enhanced, const char* text) {
  const auto& rules = kurier::bounce::Rules::builtin();
  for (auto _ : state) {
    auto verdict = rules.classify(code, enhanced, text);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK_CAPTURE(BM_BounceClassifyInline, gmail_userunknown, 550, "5.1.1",
                  "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 "
                  "double-checking the recipient's email address for typos or 550 5.1.1 unnecessary spaces.");
BENCHMARK_CAPTURE(BM_BounceClassifyInline, no_pattern_matches, 550, "5.7.1",
                  "Requested action not taken: the administrator of this system says no (ref 1234)");

void BM_BounceParse(benchmark::State& state, const char* file) {
  const std::string raw = corpus_file(file);
  for (auto _ : state) {
    auto message = kurier::bounce::parse(raw);
    benchmark::DoNotOptimize(message);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(raw.size()));
}
BENCHMARK_CAPTURE(BM_BounceParse, postfix_dsn, "lhost-postfix-02.eml");
BENCHMARK_CAPTURE(BM_BounceParse, qmail_prose, "lhost-qmail-02.eml");

}  // namespace
