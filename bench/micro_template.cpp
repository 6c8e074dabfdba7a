// Micro-benchmark: template rendering (engine/intake/template.h), once per message, with
// the ~5 KB newsletter of the peer comparison (bench/peers/newsletter.eml).
// Single-threaded.
#include <benchmark/benchmark.h>

#include <array>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/intake/template.h"

namespace {

using kurier::engine::Template;

const std::vector<std::string> kFields = {"email", "first", "last", "city", "code", "since"};

std::string newsletter() {
  std::ifstream in(KURIER_BENCH_TEMPLATE, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " KURIER_BENCH_TEMPLATE);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void BM_TemplateCompile(benchmark::State& state) {
  const std::string text = newsletter();
  for (auto _ : state) {
    auto compiled = Template::compile(text, kFields);
    benchmark::DoNotOptimize(compiled);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TemplateCompile);

// `out` is reused across messages as the session does: its capacity stays.
void BM_TemplateRender(benchmark::State& state, bool non_ascii) {
  const Template compiled = Template::compile(newsletter(), kFields);
  const std::string extra = "Message-ID: <20261123.42.123456@sender.bench.test>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n";
  const std::array<std::string_view, 6> values = {"anna.schmidt123@d17.bench.test", non_ascii ? "Jürgen" : "Anna",
                                                  "Schmidt", non_ascii ? "Köln" : "Hamburg", "SPRING-7F3A9", "2019"};
  std::string out;
  for (auto _ : state) {
    out.clear();
    compiled.render(values, extra, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(out.size()));
}
BENCHMARK_CAPTURE(BM_TemplateRender, ascii, false);
BENCHMARK_CAPTURE(BM_TemplateRender, utf8_header_values, true);

}  // namespace
