// Micro-benchmark: SMTP reply parsing (smtp/reply.h), the per-command cost paid on
// every session step. Single-threaded; results via Google Benchmark's reporters.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "smtp/reply.h"

namespace {

constexpr std::string_view kQueued = "250 2.0.0 Ok: queued as 4Fb6Yk2Hj1z9xQ\r\n";
constexpr std::string_view kEhlo =
    "250-mx.example.com Hello mta1.example.com [127.0.0.1]\r\n"
    "250-SIZE 52428800\r\n"
    "250-8BITMIME\r\n"
    "250-PIPELINING\r\n"
    "250-CHUNKING\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-STARTTLS\r\n"
    "250 SMTPUTF8\r\n";
constexpr std::string_view kBounce =
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    "550 5.1.1 unnecessary spaces. Learn more at https://support.example.com/mail/?p=NoSuchUser\r\n";

void BM_ParseReply(benchmark::State& state, std::string_view text) {
  for (auto _ : state) {
    auto reply = kurier::smtp::parse_reply(text);
    benchmark::DoNotOptimize(reply);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK_CAPTURE(BM_ParseReply, queued_250, kQueued);
BENCHMARK_CAPTURE(BM_ParseReply, ehlo_8_lines, kEhlo);
BENCHMARK_CAPTURE(BM_ParseReply, bounce_550_3_lines, kBounce);

// The incremental parser as the session uses it: bytes arrive in socket-sized
// pieces; `chunk` bytes per feed() call.
void BM_ReplyParserChunks(benchmark::State& state) {
  const auto chunk = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    kurier::smtp::ReplyParser parser;
    std::string_view rest = kEhlo;
    while (!parser.ready()) {
      std::string_view piece = rest.substr(0, chunk);
      rest.remove_prefix(parser.feed(piece));
    }
    auto reply = parser.take();
    benchmark::DoNotOptimize(reply);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReplyParserChunks)->Arg(7)->Arg(64)->Arg(4096);

}  // namespace
