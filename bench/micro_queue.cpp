// Micro-benchmark: queue state transitions (queue/store.h record()) on a real
// RocksDB in a temporary directory, per group-commit batch size. Every record() is a
// synced batch, so small batches measure fsync latency and large ones the
// per-outcome encoding and write cost. Single-threaded.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "queue/store.h"

namespace {

namespace fs = std::filesystem;
using namespace kurier::queue;

constexpr std::int64_t kNow = 1'800'000'000'000;
constexpr RecipientId kRecipients = 100'000;

// A store with one committed campaign of kRecipients queued recipients.
class QueueFixture {
 public:
  explicit QueueFixture(const std::string& name)
      : dir_(fs::temp_directory_path() / ("kurier-micro-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    store_ = open_rocksdb_store(dir_.string());
    Campaign c;
    c.name = "micro";
    c.fingerprint = "micro";
    c.from = "Bench <news@sender.bench.test>";
    c.verp_domain = "bounce.bench.test";
    c.template_text = "Subject: hi {{first}}\r\n\r\nbody\r\n";
    c.fields = {"first"};
    c.created_ms = kNow;
    auto writer = store_->begin_campaign(std::move(c));
    for (RecipientId r = 1; r <= kRecipients; ++r) {
      Recipient rec;
      rec.key.recipient = r;
      rec.address = "user" + std::to_string(r) + "@d" + std::to_string(r % 50) + ".bench.test";
      rec.fields = {"Anna"};
      rec.status.next_attempt_ms = kNow;
      writer->add(rec);
    }
    writer->commit();
    campaign_ = writer->id();
    due_ms_.assign(kRecipients + 1, kNow);
  }
  ~QueueFixture() {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Store& store() { return *store_; }
  CampaignId campaign() const { return campaign_; }
  // The schedule entry each recipient has now (deferrals move it).
  std::vector<std::int64_t>& due_ms() { return due_ms_; }

 private:
  fs::path dir_;
  std::unique_ptr<Store> store_;
  CampaignId campaign_ = 0;
  std::vector<std::int64_t> due_ms_;
};

// Built once per benchmark family: 100,000 recipients take a moment to queue.
QueueFixture& record_fixture() {
  static QueueFixture f("record");
  return f;
}
QueueFixture& due_fixture() {
  static QueueFixture f("due");
  return f;
}

Outcome outcome(CampaignId campaign, RecipientId r, std::int64_t previous_due, bool defer) {
  Outcome o;
  o.key = {campaign, r};
  o.previous_due_ms = previous_due;
  o.status.attempts = 1;
  o.status.last_attempt_ms = kNow;
  o.status.mx = "mx1.d7.bench.test";
  if (defer) {
    o.status.state = State::deferred;
    o.status.next_attempt_ms = previous_due + 300'000;
    o.status.code = 451;
    o.status.enhanced = "4.7.1";
    o.status.category = "soft";
    o.status.reason = "blocked";
    o.attempt = Attempt{kNow, "mx1.d7.bench.test", "127.0.0.7", false, "", 451, "4.7.1", "Greylisted", "deferred"};
  } else {
    o.status.state = State::delivered;
    o.status.code = 250;
    o.status.enhanced = "2.0.0";
    o.attempt = Attempt{kNow, "mx1.d7.bench.test", "127.0.0.7", false, "", 250, "2.0.0", "Ok: queued as 4Fb6Yk2Hj1z9xQ",
                        "delivered"};
  }
  return o;
}

// queued/deferred -> deferred (schedule entry moved) or -> delivered, alternating per
// pass over the recipients; range(0) outcomes per record() call.
void BM_QueueRecord(benchmark::State& state) {
  auto& f = record_fixture();
  const auto batch = static_cast<std::size_t>(state.range(0));
  RecipientId next = 1;
  bool defer = true;
  std::vector<Outcome> outcomes;
  for (auto _ : state) {
    state.PauseTiming();
    outcomes.clear();
    for (std::size_t i = 0; i < batch; ++i) {
      if (next > kRecipients) {
        next = 1;
        defer = !defer;
      }
      auto& due = f.due_ms()[next];
      outcomes.push_back(outcome(f.campaign(), next, due, defer));
      if (defer) due = outcomes.back().status.next_attempt_ms;
      ++next;
    }
    state.ResumeTiming();
    f.store().record(outcomes);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_QueueRecord)->Arg(1)->Arg(100)->Arg(1000)->UseRealTime();

// due(): the feeder's scan of the schedule, 1,000 recipients per call.
void BM_QueueDue(benchmark::State& state) {
  auto& f = due_fixture();
  ScheduleCursor cursor;
  std::int64_t items = 0;
  for (auto _ : state) {
    auto due = f.store().due(kNow + 1'000'000'000, 1000, cursor);
    if (due.empty()) {
      cursor.reset();
      due = f.store().due(kNow + 1'000'000'000, 1000, cursor);
    }
    benchmark::DoNotOptimize(due.data());
    items += static_cast<std::int64_t>(due.size());
  }
  state.SetItemsProcessed(items);
}
BENCHMARK(BM_QueueDue)->UseRealTime();

}  // namespace
