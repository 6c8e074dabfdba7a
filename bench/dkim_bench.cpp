// DKIM signatures per second on one core: rsa-sha256 (2048-bit key) and
// ed25519-sha256 over a realistic 5 KB personalised newsletter in wire form, for each
// backend (dkim/signer.h), and the signing step alone. bench/dkim_vs_openssl.sh runs
// it next to `openssl speed`, which times only what the BM_SignStep_* cases time: one
// signature of a short fixed input with a context set up once. BM_DkimSign_* add what
// every DKIM signature also costs: parsing, relaxed canonicalisation and SHA-256 of
// body and header, base64 and building the field.
// Single-threaded; keys are generated into a temp dir at start and removed at exit.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dkim/detail.h"
#include "dkim/signer.h"

namespace {

namespace fs = std::filesystem;
using kurier::dkim::Algorithm;
using kurier::dkim::Backend;
using kurier::dkim::KeySpec;
using kurier::dkim::Signer;

constexpr std::size_t kMessageSize = 5 * 1024;
constexpr std::int64_t kSigningTime = 1700000000;

// A multipart/alternative newsletter as the template renderer writes it (CRLF, the
// headers kurier signs, a text and an HTML part), padded to kMessageSize.
std::string newsletter() {
  std::string m =
      "From: Example News <news@sender.bench.test>\r\n"
      "To: Erika Mustermann <erika.mustermann@example.org>\r\n"
      "Subject: Erika, what is new in Hamburg this spring\r\n"
      "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
      "Message-ID: <20231114221320.4f2a9c1e@sender.bench.test>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative; boundary=\"=_kurier_b1\"\r\n"
      "List-Unsubscribe: <mailto:unsubscribe@sender.bench.test?subject=u-4f2a9c1e>,\r\n"
      " <https://sender.bench.test/u/4f2a9c1e>\r\n"
      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
      "Feedback-ID: spring:news:kurier\r\n"
      "\r\n"
      "--=_kurier_b1\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n";
  const std::string text_line = "Spring has arrived in Hamburg, and so has our seasonal collection:  \r\n";
  const std::string html_line =
      "<p style=\"margin:0 0 12px 0\">New this month: rain jackets, knitwear and canvas sneakers.</p>\r\n";
  for (int i = 0; i < 20; ++i) m += text_line;
  m += "\r\n--=_kurier_b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n";
  while (m.size() + html_line.size() + 64 < kMessageSize) m += html_line;
  m += "</body></html>\r\n--=_kurier_b1--\r\n";
  while (m.size() < kMessageSize) m.insert(m.size() - 2, 1, ' ');  // trailing spaces in the last line
  return m;
}

struct Keys {
  fs::path dir;
  fs::path rsa;
  fs::path ed25519;
  Keys() {
    char pattern[] = "/tmp/kurier-dkim-bench-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    dir = pattern;
    rsa = dir / "rsa.private";
    ed25519 = dir / "ed.private";
    kurier::dkim::keygen(Algorithm::rsa_sha256, "sender.bench.test", "rsa", rsa);
    kurier::dkim::keygen(Algorithm::ed25519_sha256, "sender.bench.test", "ed", ed25519);
  }
  ~Keys() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const Keys& keys() {
  static const Keys k;
  return k;
}

void sign(benchmark::State& state, const std::vector<KeySpec>& specs, Backend backend) {
  const std::unique_ptr<Signer> signer = Signer::create(specs, "sender.bench.test", backend);
  const std::string message = newsletter();
  for (auto _ : state) {
    std::string field = signer->sign(message, kSigningTime);
    benchmark::DoNotOptimize(field);
  }
  // Signatures per second (items/s); a dual run makes two per message.
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(specs.size()));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(message.size()));
  state.counters["message_bytes"] = static_cast<double>(message.size());
}

void BM_DkimSign_Rsa2048_Native(benchmark::State& state) {
  sign(state, {KeySpec{"sender.bench.test", "rsa", keys().rsa}}, Backend::native);
}
void BM_DkimSign_Rsa2048_Opendkim(benchmark::State& state) {
  sign(state, {KeySpec{"sender.bench.test", "rsa", keys().rsa}}, Backend::opendkim);
}
void BM_DkimSign_Ed25519_Native(benchmark::State& state) {
  sign(state, {KeySpec{"sender.bench.test", "ed", keys().ed25519}}, Backend::native);
}
void BM_DkimSign_Ed25519_Opendkim(benchmark::State& state) {
  sign(state, {KeySpec{"sender.bench.test", "ed", keys().ed25519}}, Backend::opendkim);
}
void BM_DkimSign_Dual_Native(benchmark::State& state) {
  sign(state, {KeySpec{"sender.bench.test", "rsa", keys().rsa}, KeySpec{"sender.bench.test", "ed", keys().ed25519}},
       Backend::native);
}
// The signing step of the native backend alone, as sign() calls it: one signature of a
// SHA-256 digest (the header hash) with the key parsed and the context set up once.
void sign_step(benchmark::State& state, const fs::path& key_file) {
  const kurier::dkim::detail::LoadedKey key =
      kurier::dkim::detail::load_key(KeySpec{"sender.bench.test", "bench", key_file});
  kurier::dkim::detail::DigestSigner signer(key);
  unsigned char digest[32];
  for (std::size_t i = 0; i < sizeof digest; ++i) digest[i] = static_cast<unsigned char>(i * 7 + 1);
  unsigned char sig[kurier::dkim::detail::kMaxSignatureSize];
  for (auto _ : state) {
    std::size_t size = signer.sign(digest, sizeof digest, sig);
    benchmark::DoNotOptimize(size);
    benchmark::DoNotOptimize(sig);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SignStep_Rsa2048(benchmark::State& state) { sign_step(state, keys().rsa); }
void BM_SignStep_Ed25519(benchmark::State& state) { sign_step(state, keys().ed25519); }

BENCHMARK(BM_DkimSign_Rsa2048_Native)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DkimSign_Rsa2048_Opendkim)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DkimSign_Ed25519_Native)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DkimSign_Ed25519_Opendkim)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DkimSign_Dual_Native)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignStep_Rsa2048)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignStep_Ed25519)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
