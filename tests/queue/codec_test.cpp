// Round trips and ordering of the store's key and value formats (queue/codec.h),
// and rejection of truncated records. Pure functions: no RocksDB, test thread only.
#include "queue/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace kurier::queue::codec {
namespace {

TEST(QueueCodec, ScheduleKeysSortByDueThenCampaignThenRecipient) {
  std::vector<std::tuple<std::int64_t, CampaignId, RecipientId>> in = {
      {-5, 1, 1}, {0, 1, 1}, {1, 1, 2}, {1, 2, 1}, {255, 1, 1}, {256, 1, 1}, {1'700'000'000'000, 1, 1},
      {1'700'000'000'000, 1, 0x01000000}, {1'700'000'000'000, 0x00000100, 1},
      {std::numeric_limits<std::int64_t>::max(), 0xffffffff, 0xffffffff}};
  std::vector<std::string> keys;
  for (auto [due, c, r] : in) keys.push_back(schedule_key(due, {c, r}));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto e = parse_schedule_key(keys[i]);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->due_ms, std::get<0>(in[i]));
    EXPECT_EQ(e->key.campaign, std::get<1>(in[i]));
    EXPECT_EQ(e->key.recipient, std::get<2>(in[i]));
  }
  EXPECT_LT(schedule_bound(10), schedule_key(10, {0, 0}));
  EXPECT_LT(schedule_key(10, {0xffffffff, 0xffffffff}), schedule_bound(11));
  EXPECT_FALSE(parse_schedule_key("s123"));
}

TEST(QueueCodec, CampaignRangesAreDisjointAndOrdered) {
  EXPECT_LT(recipient_key(kRecipientPrefix, {7, 0xffffffff}), campaign_prefix_end(kRecipientPrefix, 7));
  EXPECT_EQ(campaign_prefix_end(kRecipientPrefix, 7), campaign_prefix(kRecipientPrefix, 8));
  EXPECT_EQ(campaign_prefix_end(kStatusPrefix, 0xffffffff), std::string(1, kStatusPrefix + 1));
  auto k = parse_recipient_key(recipient_key(kStatusPrefix, {3, 4}));
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, (RecipientKey{3, 4}));
  EXPECT_LT(attempt_key({3, 4}, 9), attempt_key({3, 4}, 10));
  EXPECT_LT(attempt_key({3, 4}, 0xffff), attempt_key({3, 5}, 0));
}

TEST(QueueCodec, StatusRoundTripsAndStaysSmallWhenQueued) {
  Status s;
  s.next_attempt_ms = 1'700'000'000'123;
  std::string out;
  encode_status(out, s, 0);
  EXPECT_LE(out.size(), 8u);  // state, flags, 6-byte varint
  StoredStatus back;
  ASSERT_TRUE(decode_status(out, back));
  EXPECT_EQ(back.status.state, State::queued);
  EXPECT_EQ(back.status.next_attempt_ms, s.next_attempt_ms);
  EXPECT_EQ(back.logged_attempts, 0u);

  s.state = State::bounced;
  s.attempts = 3;
  s.next_attempt_ms = -1;
  s.last_attempt_ms = 1'700'000'000'999;
  s.code = 550;
  s.enhanced = "5.1.1";
  s.mx = "mx.example.com";
  s.category = "hard";
  s.reason = "userunknown";
  out.clear();
  encode_status(out, s, 3);
  ASSERT_TRUE(decode_status(out, back));
  EXPECT_EQ(back.status.state, State::bounced);
  EXPECT_EQ(back.status.attempts, 3);
  EXPECT_EQ(back.status.next_attempt_ms, -1);
  EXPECT_EQ(back.status.last_attempt_ms, s.last_attempt_ms);
  EXPECT_EQ(back.status.code, 550);
  EXPECT_EQ(back.status.enhanced, "5.1.1");
  EXPECT_EQ(back.status.mx, "mx.example.com");
  EXPECT_EQ(back.status.category, "hard");
  EXPECT_EQ(back.status.reason, "userunknown");
  EXPECT_EQ(back.logged_attempts, 3u);
  EXPECT_EQ(peek_state(out), State::bounced);

  // Every truncation is rejected, never read past the end.
  for (std::size_t n = 0; n < out.size(); ++n) EXPECT_FALSE(decode_status(out.substr(0, n), back)) << n;
  EXPECT_FALSE(peek_state(std::string(1, '\x09')));
}

TEST(QueueCodec, RecipientAttemptCampaignSuppressionRoundTrip) {
  std::string out;
  encode_recipient_data(out, "Jane.Doe@example.com", {"Jane", "", "Z\xc3\xbcrich"});
  std::string address;
  std::vector<std::string> fields;
  ASSERT_TRUE(decode_recipient_data(out, address, fields));
  EXPECT_EQ(address, "Jane.Doe@example.com");
  EXPECT_EQ(fields, (std::vector<std::string>{"Jane", "", "Z\xc3\xbcrich"}));
  EXPECT_FALSE(decode_recipient_data(out.substr(0, out.size() - 1), address, fields));

  Attempt a;
  a.time_ms = 42;
  a.mx_host = "mx";
  a.mx_address = "2001:db8::25";
  a.tls = true;
  a.tls_detail = "TLSv1.3";
  a.code = 421;
  a.enhanced = "4.7.0";
  a.text = "try later";
  a.classification = "deferred";
  out.clear();
  encode_attempt(out, a);
  Attempt b;
  ASSERT_TRUE(decode_attempt(out, b));
  EXPECT_EQ(b.time_ms, 42);
  EXPECT_EQ(b.mx_address, "2001:db8::25");
  EXPECT_TRUE(b.tls);
  EXPECT_EQ(b.code, 421);
  EXPECT_EQ(b.text, "try later");
  EXPECT_EQ(b.classification, "deferred");

  Campaign c;
  c.id = 9;
  c.name = "spring";
  c.template_text = std::string(100'000, 'x');
  c.fields = {"first", "city"};
  c.recipient_count = 123456;
  c.created_ms = 77;
  out.clear();
  encode_campaign(out, c, true);
  Campaign d;
  bool committed = false;
  ASSERT_TRUE(decode_campaign(out, d, committed));
  EXPECT_TRUE(committed);
  EXPECT_EQ(d.id, 9u);
  EXPECT_EQ(d.name, "spring");
  EXPECT_EQ(d.template_text.size(), 100'000u);
  EXPECT_EQ(d.fields, c.fields);
  EXPECT_EQ(d.recipient_count, 123456u);
  EXPECT_EQ(d.created_ms, 77);

  Suppression s{"ignored", "complaint", 5};
  out.clear();
  encode_suppression(out, s);
  Suppression t;
  ASSERT_TRUE(decode_suppression(suppression_key("Bob@Example.COM"), out, t));
  EXPECT_EQ(t.address, "bob@example.com");
  EXPECT_EQ(t.reason, "complaint");
  EXPECT_EQ(t.time_ms, 5);
}

TEST(QueueCodec, HugeCountsInCorruptInputAreRejected) {
  std::string out = "\x03" "abc" "\xff\xff\xff\xff\x0f";  // address "abc", then 4G fields
  std::string address;
  std::vector<std::string> fields;
  EXPECT_FALSE(decode_recipient_data(out, address, fields));
}

}  // namespace
}  // namespace kurier::queue::codec
