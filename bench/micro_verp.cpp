// Micro-benchmark: VERP return paths (engine/core/verp.h), encoded once per message and
// decoded once per bounce received. Single-threaded.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "engine/core/verp.h"

namespace {

using kurier::engine::Verp;
using kurier::engine::VerpIds;

constexpr char kSecret[] = "bench-secret-0123456789abcdef";

void BM_VerpEncode(benchmark::State& state) {
  const Verp verp(kSecret);
  std::uint32_t recipient = 1;
  for (auto _ : state) {
    auto address = verp.address(VerpIds{42, recipient++}, "bounce.example.com");
    benchmark::DoNotOptimize(address);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerpEncode);

// Decodes `address` once per iteration.
void decode_each_iteration(benchmark::State& state, const Verp& verp, const std::string& address) {
  for (auto _ : state) {
    auto ids = verp.decode_address(address);
    benchmark::DoNotOptimize(ids);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_VerpDecode(benchmark::State& state) {
  const Verp verp(kSecret);
  // Upper case: the path taken when an MTA changed the case of the local part.
  std::string address = verp.address(VerpIds{42, 123456}, "bounce.example.com");
  for (char& c : address)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  decode_each_iteration(state, verp, address);
}
BENCHMARK(BM_VerpDecode);

// A forged token must cost no more than a valid one (the MAC check is the work).
void BM_VerpDecodeForged(benchmark::State& state) {
  const Verp verp(kSecret);
  std::string address = verp.address(VerpIds{42, 123456}, "bounce.example.com");
  address[4] = address[4] == 'a' ? 'b' : 'a';
  decode_each_iteration(state, verp, address);
}
BENCHMARK(BM_VerpDecodeForged);

}  // namespace
