// Matching inbound mail to recipients (engine/bounces/apply.h) against a real RocksDB
// queue in a temporary directory: a valid VERP token, a bad HMAC, no token, a foreign
// domain, every message kind, the soft-bounce limit, and a real DSN through
// bounce::parse. Test thread only.
#include <gtest/gtest.h>

#include "bounce/bounce.h"
#include "engine/bounces/apply.h"
#include "engine/events/campaign_events.h"
#include "engine/intake/campaign.h"
#include "engine/core/input_error.h"
#include "engine/core/verp.h"
#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

constexpr const char* kSecret = "apply-test-secret";
constexpr const char* kVerpDomain = "bounce.sender.test";
constexpr std::int64_t kNow = 1'700'000'000'000;

class BounceApply : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = queue::open_rocksdb_store((dir_.path() / "queue").string());
    test::write_file(dir_.path() / "template.eml", "Subject: Hi\n\nHello {{name}}\n");
    test::write_file(dir_.path() / "campaign.toml",
                     "id = \"c1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                     "recipients = \"recipients.csv\"\n[verp]\ndomain = \"Bounce.Sender.test\"\n");
    test::write_file(dir_.path() / "recipients.csv",
                     "email,name\na@x.test,A\nb@x.test,B\nc@x.test,C\nd@x.test,D\ne@x.test,E\nf@x.test,F\n");
    campaign_ = submit_campaign(*store_, load_campaign(dir_.path() / "campaign.toml"), kNow).id;
    // Every recipient delivered: what follows are events after a 250.
    queue::ScheduleCursor cursor;
    std::vector<queue::Outcome> outcomes;
    for (const auto& r : store_->due(kNow, 100, cursor)) {
      queue::Outcome o;
      o.key = r.key;
      o.previous_due_ms = r.status.next_attempt_ms;
      o.status.state = queue::State::delivered;
      o.status.code = 250;
      outcomes.push_back(o);
    }
    ASSERT_EQ(outcomes.size(), 6u);
    store_->record(outcomes);
    config_.verp.secret = kSecret;
    config_.bounce.soft_limit = 2;
  }

  std::string token_address(queue::RecipientId id, const std::string& domain = kVerpDomain) const {
    return Verp(kSecret).address({campaign_, id}, domain);
  }

  static bounce::Message message(bounce::Kind kind, std::vector<std::string> candidates) {
    bounce::Message m;
    m.kind = kind;
    m.verp_candidates = std::move(candidates);
    return m;
  }

  static bounce::Message hard_bounce(std::vector<std::string> candidates, const std::string& rcpt) {
    auto m = message(bounce::Kind::bounce, std::move(candidates));
    bounce::RecipientReport r;
    r.recipient = rcpt;
    r.status = "5.1.1";
    r.reply = "550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown";
    r.action = "failed";
    r.verdict = {"userunknown", "hard", true};
    m.recipients.push_back(r);
    return m;
  }

  test::TempDir dir_;
  std::unique_ptr<queue::Store> store_;
  queue::CampaignId campaign_ = 0;
  Config config_;
};

TEST_F(BounceApply, HardBounceWithAValidTokenIsALateBounceAndSuppressesAtOnce) {
  BounceApplier applier(*store_, config_);
  // The token in angle brackets, upper-cased by some relay: still ours.
  std::string verp = token_address(1);
  for (auto& ch : verp) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  auto result = applier.apply(hard_bounce({"Mailer <someone@else.test>", "<" + verp + ">"}, "a@x.test"), kNow + 5);
  EXPECT_TRUE(result.matched);
  EXPECT_EQ(result.recipient.recipient, 1u);
  EXPECT_EQ(result.address, "a@x.test");
  ASSERT_TRUE(result.event);
  EXPECT_EQ(*result.event, queue::EventKind::late_bounce);
  EXPECT_TRUE(result.suppressed);

  auto r = store_->recipient({campaign_, 1});
  EXPECT_EQ(r->status.state, queue::State::delivered) << "the MX said 250; the late bounce is an event";
  ASSERT_TRUE(r->status.event);
  EXPECT_EQ(r->status.event->kind, queue::EventKind::late_bounce);
  EXPECT_EQ(r->status.event->reason, "userunknown");
  EXPECT_EQ(r->status.event->category, "hard");
  EXPECT_EQ(r->status.event->time_ms, kNow + 5);
  EXPECT_NE(r->status.event->detail.find("5.1.1"), std::string::npos);
  auto s = store_->suppression("a@x.test");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, "hard-bounce userunknown");
  EXPECT_EQ(store_->counts(campaign_).late_bounce, 1u);
  // Nobody else was touched.
  EXPECT_FALSE(store_->recipient({campaign_, 2})->status.event);
}

TEST_F(BounceApply, BadHmacNoTokenForeignDomainOrUnknownRecipientAreIgnored) {
  BounceApplier applier(*store_, config_);
  std::string forged = token_address(2);
  auto at = forged.find('@');
  forged[at - 1] = forged[at - 1] == 'a' ? 'b' : 'a';  // one character of the MAC changed
  std::vector<bounce::Message> messages = {
      hard_bounce({forged}, "b@x.test"),
      hard_bounce({Verp("another-secret").address({campaign_, 2}, kVerpDomain)}, "b@x.test"),
      hard_bounce({"b@x.test", "postmaster@sender.test"}, "b@x.test"),   // no token at all
      hard_bounce({token_address(2, "elsewhere.test")}, "b@x.test"),    // valid MAC, foreign domain
      hard_bounce({token_address(999)}, "b@x.test"),                    // valid MAC, no such recipient
      hard_bounce({}, "b@x.test"),
  };
  ApplyStats stats;
  for (const auto& m : messages) {
    auto result = applier.apply(m, kNow);
    EXPECT_FALSE(result.matched);
    EXPECT_FALSE(result.event);
    EXPECT_FALSE(result.suppressed);
    stats.add(m, result);
  }
  EXPECT_EQ(stats.messages, 6u);
  EXPECT_EQ(stats.unmatched, 6u);
  EXPECT_EQ(stats.matched, 0u);
  EXPECT_FALSE(store_->suppression("b@x.test")) << "a forged token must not suppress anyone";
  EXPECT_TRUE(store_->events({campaign_, 2}).empty());
}

TEST_F(BounceApply, EachKindRecordsWhatItMeans) {
  BounceApplier applier(*store_, config_);
  ApplyStats stats;
  auto apply = [&](const bounce::Message& m) {
    auto result = applier.apply(m, kNow);
    stats.add(m, result);
    return result;
  };

  // delay: noted only.
  auto delay = message(bounce::Kind::delay, {token_address(1)});
  delay.recipients.push_back({"a@x.test", "4.4.7", "", "", "delayed", {"expired", "soft", false}});
  auto r = apply(delay);
  ASSERT_TRUE(r.event);
  EXPECT_EQ(*r.event, queue::EventKind::delay);
  EXPECT_FALSE(r.suppressed);
  EXPECT_FALSE(store_->suppression("a@x.test"));
  EXPECT_EQ(store_->soft_bounces("a@x.test"), 0u) << "a delay is not a bounce";

  // ARF abuse report: complaint + suppression.
  auto complaint = message(bounce::Kind::feedback, {token_address(2)});
  complaint.feedback_type = "abuse";
  r = apply(complaint);
  ASSERT_TRUE(r.event);
  EXPECT_EQ(*r.event, queue::EventKind::complaint);
  EXPECT_TRUE(r.suppressed);
  EXPECT_EQ(store_->suppression("b@x.test")->reason, "complaint abuse");
  EXPECT_EQ(store_->recipient({campaign_, 2})->status.event->reason, "complaint abuse");

  // ARF opt-out: unsubscribe + suppression.
  auto optout = message(bounce::Kind::feedback, {token_address(3)});
  optout.feedback_type = "opt-out";
  r = apply(optout);
  ASSERT_TRUE(r.event);
  EXPECT_EQ(*r.event, queue::EventKind::unsubscribe);
  EXPECT_EQ(store_->suppression("c@x.test")->reason, "unsubscribe");

  // Auto-reply: an event, never a bounce, never a suppression.
  auto vacation = message(bounce::Kind::autoreply, {token_address(4)});
  vacation.subject = "Abwesenheitsnotiz: Hi";
  r = apply(vacation);
  ASSERT_TRUE(r.event);
  EXPECT_EQ(*r.event, queue::EventKind::autoreply);
  EXPECT_FALSE(r.suppressed);
  EXPECT_FALSE(store_->suppression("d@x.test"));
  EXPECT_EQ(store_->soft_bounces("d@x.test"), 0u);
  EXPECT_EQ(store_->recipient({campaign_, 4})->status.event->detail, "Abwesenheitsnotiz: Hi");
  EXPECT_EQ(store_->counts(campaign_).late_bounce, 0u);

  // A human reply, a success DSN, junk: matched, nothing recorded.
  for (auto kind : {bounce::Kind::reply, bounce::Kind::delivered, bounce::Kind::unknown}) {
    r = apply(message(kind, {token_address(5)}));
    EXPECT_TRUE(r.matched);
    EXPECT_FALSE(r.event);
  }
  EXPECT_TRUE(store_->events({campaign_, 5}).empty());
  EXPECT_FALSE(store_->suppression("e@x.test"));

  EXPECT_EQ(stats.matched, 7u);
  EXPECT_EQ(stats.suppressed, 2u);
  EXPECT_EQ(stats.by_kind["feedback"], 2u);
  EXPECT_EQ(stats.by_event["autoreply"], 1u);
  auto counts = store_->counts(campaign_);
  EXPECT_EQ(counts.delay, 1u);
  EXPECT_EQ(counts.complaint, 1u);
  EXPECT_EQ(counts.unsubscribe, 1u);
  EXPECT_EQ(counts.autoreply, 1u);
}

TEST_F(BounceApply, SoftLateBouncesSuppressAtTheConfiguredLimit) {
  BounceApplier applier(*store_, config_);  // soft_limit = 2
  auto soft = message(bounce::Kind::bounce, {token_address(6)});
  soft.recipients.push_back({"f@x.test", "5.2.2", "552 5.2.2 mailbox full", "", "failed", {"mailboxfull", "soft", false}});
  auto r = applier.apply(soft, kNow);
  EXPECT_TRUE(r.matched);
  EXPECT_FALSE(r.suppressed);
  EXPECT_EQ(store_->soft_bounces("f@x.test"), 1u);
  EXPECT_EQ(store_->recipient({campaign_, 6})->status.event->category, "soft");
  r = applier.apply(soft, kNow + 1);
  EXPECT_TRUE(r.suppressed);
  EXPECT_EQ(store_->suppression("f@x.test")->reason, "soft-bounce mailboxfull x2");
  EXPECT_EQ(store_->events({campaign_, 6}).size(), 2u);
}

TEST_F(BounceApply, APostfixDsnThroughTheParserEndsAsLateBounceUserUnknown) {
  const std::string verp = token_address(3);
  const std::string dsn =
      "Return-Path: <>\r\n"
      "From: MAILER-DAEMON@relay.test (Mail Delivery System)\r\n"
      "Subject: Undelivered Mail Returned to Sender\r\n"
      "To: " + verp + "\r\n"
      "Auto-Submitted: auto-replied\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n"
      "\r\n"
      "--B1\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n"
      "\r\n"
      "I'm sorry to have to inform you that your message could not be delivered.\r\n"
      "<c@x.test>: host 127.0.0.1 said: 550 5.1.1 <c@x.test>: Recipient address rejected: User unknown\r\n"
      "\r\n"
      "--B1\r\n"
      "Content-Type: message/delivery-status\r\n"
      "\r\n"
      "Reporting-MTA: dns; relay.test\r\n"
      "\r\n"
      "Final-Recipient: rfc822; c@x.test\r\n"
      "Original-Recipient: rfc822;c@x.test\r\n"
      "Action: failed\r\n"
      "Status: 5.1.1\r\n"
      "Remote-MTA: dns; 127.0.0.1\r\n"
      "Diagnostic-Code: smtp; 550 5.1.1 <c@x.test>: Recipient address rejected: User unknown\r\n"
      "\r\n"
      "--B1\r\n"
      "Content-Type: text/rfc822-headers\r\n"
      "\r\n"
      "Return-Path: <" + verp + ">\r\n"
      "From: News <news@sender.test>\r\n"
      "To: c@x.test\r\n"
      "Subject: Hi\r\n"
      "\r\n"
      "--B1--\r\n";
  auto parsed = bounce::parse(dsn);
  ASSERT_EQ(parsed.kind, bounce::Kind::bounce);
  BounceApplier applier(*store_, config_);
  auto r = applier.apply(parsed, kNow);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.address, "c@x.test");
  EXPECT_EQ(r.reason, "userunknown");
  EXPECT_TRUE(r.suppressed);
  EXPECT_EQ(store_->suppression("c@x.test")->reason, "hard-bounce userunknown");
}

TEST(AddressUpdateFor, HardSuppressesSoftCountsDeliveredResetsTheRestNothing) {
  using Kind = queue::AddressUpdate::Kind;
  queue::Status s;
  s.last_attempt_ms = 7;
  s.state = queue::State::delivered;
  EXPECT_EQ(address_update_for(s, "a@x.test", 3)->kind, Kind::delivered);
  s.state = queue::State::bounced;
  s.category = "hard";
  s.reason = "userunknown";
  auto u = address_update_for(s, "a@x.test", 3);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->kind, Kind::suppress);
  EXPECT_EQ(u->reason, "hard-bounce userunknown");
  EXPECT_EQ(u->time_ms, 7);
  s.category = "soft";
  s.reason = "mailboxfull";
  u = address_update_for(s, "a@x.test", 3);
  EXPECT_EQ(u->kind, Kind::soft_bounce);
  EXPECT_EQ(u->soft_limit, 3u);
  s.category = "block";  // the sender's reputation, not the address
  EXPECT_FALSE(address_update_for(s, "a@x.test", 3));
  s.state = queue::State::expired;
  EXPECT_EQ(address_update_for(s, "a@x.test", 3)->kind, Kind::soft_bounce);
  s.state = queue::State::deferred;
  EXPECT_FALSE(address_update_for(s, "a@x.test", 3));
}

TEST(BounceApplierConfig, RequiresTheVerpSecret) {
  test::TempDir dir;
  auto store = queue::open_rocksdb_store((dir.path() / "q").string());
  Config config;
  EXPECT_ANY_THROW(BounceApplier(*store, config));
}

}  // namespace
}  // namespace kurier::engine

namespace kurier::engine {
namespace {

TEST(BounceConfig, SoftLimitAndDomainsAreReadAndCheckedWithFileLineAndField) {
  test::TempDir dir;
  test::write_file(dir.path() / "kurier.toml",
                   "[bounce]\nlisten = \"127.0.0.1:0\"\nsoft_limit = 5\ndomains = [\"Bounce.Example.com\"]\n");
  auto config = load_config(dir.path() / "kurier.toml");
  EXPECT_EQ(config.bounce.soft_limit, 5u);
  EXPECT_EQ(config.bounce.domains, (std::vector<std::string>{"bounce.example.com"}));
  EXPECT_EQ(config.bounce.listen, "127.0.0.1:0");
  EXPECT_EQ(Config{}.bounce.soft_limit, 3u) << "the default";

  test::write_file(dir.path() / "bad.toml", "[bounce]\n\nsoft_limit = -1\n");
  try {
    load_config(dir.path() / "bad.toml");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_EQ(e.field(), "bounce.soft_limit");
  }
  test::write_file(dir.path() / "bad2.toml", "[bounce]\ndomains = \"one.example\"\n");
  EXPECT_THROW(load_config(dir.path() / "bad2.toml"), InputError);
}

}  // namespace
}  // namespace kurier::engine

namespace kurier::engine {
namespace {

// What the applier logs (the event log's seam).
struct KeptEvents final : EventSink {
  explicit KeptEvents(std::vector<EventRecord>& out) : kept(out) {}
  void append(std::span<const EventRecord> events) noexcept override {
    kept.insert(kept.end(), events.begin(), events.end());
  }
  std::vector<EventRecord>& kept;
};

TEST_F(BounceApply, RecordedEventsAreLoggedAfterTheCommitAndUnmatchedOnesAreNot) {
  std::vector<EventRecord> kept;
  CampaignEvents events(*store_, std::make_unique<KeptEvents>(kept), kSecret);
  BounceApplier applier(*store_, config_, &events);
  applier.apply(hard_bounce({token_address(2)}, "b@x.test"), kNow + 1000);
  auto complaint = message(bounce::Kind::feedback, {token_address(3)});
  complaint.feedback_type = "abuse";
  applier.apply(complaint, kNow + 2000);
  applier.apply(message(bounce::Kind::bounce, {Verp("forged").address({campaign_, 4}, kVerpDomain)}), kNow + 3000);
  applier.apply(message(bounce::Kind::reply, {token_address(5)}), kNow + 4000);  // nothing recorded
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].type, EventType::late_bounce);
  EXPECT_EQ(kept[0].recipient, "b@x.test");
  EXPECT_EQ(kept[0].campaign, "c1");
  EXPECT_EQ(kept[0].reason, "userunknown");
  EXPECT_EQ(kept[0].category, "hard");
  EXPECT_EQ(kept[0].time_ms, kNow + 1000);
  EXPECT_EQ(kept[0].sender, token_address(2));
  EXPECT_EQ(kept[1].type, EventType::complaint);
  EXPECT_EQ(kept[1].recipient, "c@x.test");
  EXPECT_EQ(kept[1].reason, "complaint abuse");
}

}  // namespace
}  // namespace kurier::engine
