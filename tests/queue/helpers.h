// Shared by the queue tests: builders for campaigns, recipients and outcomes, and a
// store opened in a fresh temporary directory. Test thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::queue::test {

inline Campaign make_campaign(const std::string& name) {
  Campaign c;
  c.name = name;
  c.fingerprint = "sha256:" + name;
  c.from = "Example News <news@example.com>";
  c.verp_domain = "bounce.example.com";
  c.template_text = "Subject: Hello {{first}}\r\n\r\nHi {{first}} from {{city}}\r\n";
  c.fields = {"first", "city"};
  c.settings = R"({"max_age":"5d"})";
  c.created_ms = 1'700'000'000'000;
  return c;
}

inline Recipient make_recipient(RecipientId id, std::int64_t due_ms, State state = State::queued) {
  Recipient r;
  r.key.recipient = id;
  r.address = "user" + std::to_string(id) + "@example.com";
  r.fields = {"First" + std::to_string(id), "Berlin"};
  r.status.state = state;
  r.status.next_attempt_ms = is_final(state) ? 0 : due_ms;
  return r;
}

inline Attempt make_attempt(std::int64_t time_ms, int code, const std::string& enhanced, const std::string& text,
                            const std::string& classification) {
  Attempt a;
  a.time_ms = time_ms;
  a.mx_host = "mx1.example.com";
  a.mx_address = "192.0.2.25";
  a.tls = true;
  a.tls_detail = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  a.code = code;
  a.enhanced = enhanced;
  a.text = text;
  a.classification = classification;
  return a;
}

// An outcome built from what due() returned (its next_attempt_ms is the entry to move).
inline Outcome make_outcome(const Recipient& r, State state, std::int64_t now_ms, std::int64_t next_ms,
                            std::optional<Attempt> attempt) {
  Outcome o;
  o.key = r.key;
  o.previous_due_ms = r.status.next_attempt_ms;
  o.status = r.status;
  o.status.state = state;
  o.status.attempts = static_cast<std::uint16_t>(r.status.attempts + 1);
  o.status.last_attempt_ms = now_ms;
  o.status.next_attempt_ms = is_final(state) ? 0 : next_ms;
  if (attempt) {
    o.status.code = attempt->code;
    o.status.enhanced = attempt->enhanced;
    o.status.mx = attempt->mx_host;
  }
  o.attempt = std::move(attempt);
  return o;
}

// Writes and commits a campaign whose recipients 1..count are all due at due_ms.
inline CampaignId add_campaign(Store& store, const std::string& name, std::uint32_t count, std::int64_t due_ms) {
  auto writer = store.begin_campaign(make_campaign(name));
  for (RecipientId id = 1; id <= count; ++id) writer->add(make_recipient(id, due_ms));
  writer->commit();
  return writer->id();
}

// Every pending recipient due at or before now_ms, scanning from the start.
inline std::vector<Recipient> all_due(Store& store, std::int64_t now_ms) {
  ScheduleCursor cursor;
  return store.due(now_ms, SIZE_MAX, cursor);
}

// A RocksDB store in a fresh temporary directory, reopened on demand (persistence tests).
class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override { store_ = open_rocksdb_store(path()); }
  std::string path() const { return (dir_.path() / "queue").string(); }
  void reopen() {
    store_.reset();
    store_ = open_rocksdb_store(path());
  }

  kurier::test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace kurier::queue::test
