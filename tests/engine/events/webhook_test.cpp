// Webhook pieces that need no receiver: the signature (checked against OpenSSL's
// command-line HMAC of a known vector), the backoff, the body filter, and the
// [events] / [[webhook]] configuration with its errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/core/config.h"
#include "engine/events/event_log.h"
#include "engine/events/webhook.h"
#include "tests/common/process.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {

TEST(WebhookSignature, IsHexHmacSha256OfTheBody) {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(webhook_signature("what do ya want for nothing?", "Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_NE(webhook_signature("[{}]", "a"), webhook_signature("[{}]", "b"));
}

TEST(WebhookRetry, DoublesFromOneSecondUpToAMinute) {
  EXPECT_EQ(webhook_retry_delay(1).count(), 1000);
  EXPECT_EQ(webhook_retry_delay(2).count(), 2000);
  EXPECT_EQ(webhook_retry_delay(5).count(), 16000);
  EXPECT_EQ(webhook_retry_delay(7).count(), 60000);
  EXPECT_EQ(webhook_retry_delay(1000).count(), 60000);
}

TEST(WebhookBody, IsAJsonArrayOfTheWantedTypes) {
  std::vector<std::string> lines = {R"({"id":1,"type":"delivered","x":1})", R"({"id":2,"type":"bounced","x":2})",
                                    R"({"id":3,"type":"intake","x":3})"};
  std::size_t n = 0;
  auto all = nlohmann::json::parse(webhook_body(lines, {}, &n));
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(all.size(), 3u);
  auto some = nlohmann::json::parse(webhook_body(lines, {EventType::bounced, EventType::intake}, &n));
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(some[0]["id"], 2);
  EXPECT_EQ(some[1]["id"], 3);
  EXPECT_EQ(webhook_body(lines, {EventType::complaint}, &n), "");
  EXPECT_EQ(n, 0u);
}

TEST(LineFields, IdAndTypeAreReadFromTheLineHead) {
  EXPECT_EQ(line_id(R"({"id":42,"type":"delay"})"), 42u);
  EXPECT_EQ(line_type(R"({"id":42,"type":"delay"})"), "delay");
  EXPECT_FALSE(line_id(R"({"type":"delay"})"));
}

class EventsConfigTest : public ::testing::Test {
 protected:
  InputError error_of(const std::string& toml) {
    return test::file_input_error(dir_.path() / "kurier.toml", toml, [](const auto& f) { load_config(f); });
  }
  test::TempDir dir_;
};

TEST_F(EventsConfigTest, DefaultsAndValues) {
  test::write_file(dir_.path() / "kurier.toml", "[queue]\npath = \"q\"\n");
  Config d = load_config(dir_.path() / "kurier.toml");
  EXPECT_TRUE(d.events.enabled);
  EXPECT_EQ(d.events.max_bytes, 256u << 20);
  EXPECT_EQ(d.events.keep, 10u);
  EXPECT_EQ(event_log_file(d.events, d.queue.path), dir_.path() / "q" / "events.jsonl");
  EXPECT_TRUE(d.webhooks.empty());

  test::write_file(dir_.path() / "kurier.toml",
                   "[events]\nenabled = true\nfile = \"log/ev.jsonl\"\nmax_bytes = 1048576\nkeep = 3\n"
                   "[[webhook]]\nurl = \"https://crm.example/hook\"\nsecret = \"s\"\nevents = [\"bounced\", "
                   "\"complaint\"]\nbatch = 50\ntimeout = \"5s\"\n"
                   "[[webhook]]\nname = \"dw\"\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"t\"\n");
  Config c = load_config(dir_.path() / "kurier.toml");
  EXPECT_EQ(event_log_file(c.events, c.queue.path), dir_.path() / "log/ev.jsonl");
  EXPECT_EQ(c.events.max_bytes, 1048576u);
  EXPECT_EQ(c.events.keep, 3u);
  ASSERT_EQ(c.webhooks.size(), 2u);
  EXPECT_EQ(c.webhooks[0].name, "https://crm.example/hook") << "the url names an unnamed webhook";
  EXPECT_EQ(c.webhooks[0].events, (std::vector<EventType>{EventType::bounced, EventType::complaint}));
  EXPECT_EQ(c.webhooks[0].batch, 50u);
  EXPECT_EQ(c.webhooks[0].timeout.count(), 5000);
  EXPECT_EQ(c.webhooks[1].name, "dw");
  EXPECT_TRUE(c.webhooks[1].events.empty()) << "all types";
  EXPECT_EQ(webhook_position_key(c.webhooks[1]), "webhook/dw");
}

TEST_F(EventsConfigTest, ErrorsNameTheFileTheLineAndTheField) {
  auto e = error_of("[[webhook]]\nurl = \"ftp://x\"\nsecret = \"s\"\n");
  EXPECT_EQ(e.field(), "webhook.url");
  EXPECT_EQ(e.line(), 2u);
  EXPECT_TRUE(e.file().ends_with("kurier.toml"));
  EXPECT_TRUE(test::says(e, "http:// or https://"));

  e = error_of("[[webhook]]\nurl = \"http://x/\"\n");
  EXPECT_EQ(e.field(), "webhook.secret");

  e = error_of("[[webhook]]\nurl = \"http://x/\"\nsecret = \"s\"\nevents = [\"delivered\", \"bounce\"]\n");
  EXPECT_EQ(e.field(), "webhook.events");
  EXPECT_EQ(e.line(), 4u);
  EXPECT_TRUE(test::says(e, "unknown event type 'bounce'")) << e.what();
  EXPECT_TRUE(test::says(e, "late_bounce")) << "lists the known types";

  e = error_of("[[webhook]]\nurl = \"http://x/\"\nsecret = \"s\"\nsecrte = 1\n");
  EXPECT_TRUE(test::says(e, "did you mean 'secret'")) << e.what();

  e = error_of("[events]\nkeep = -1\n");
  EXPECT_EQ(e.field(), "events.keep");
  e = error_of("[events]\nmax_byte = 100\n");
  EXPECT_TRUE(test::says(e, "did you mean 'max_bytes'")) << e.what();
  e = error_of("[event]\nenabled = false\n");
  EXPECT_TRUE(test::says(e, "did you mean [events]")) << e.what();
  e = error_of("[[webhook]]\nname = \"a\"\nurl = \"http://x/\"\nsecret = \"s\"\n"
               "[[webhook]]\nname = \"a\"\nurl = \"http://y/\"\nsecret = \"s\"\n");
  EXPECT_TRUE(test::says(e, "duplicate webhook name")) << e.what();
  e = error_of("[events]\nenabled = false\n[[webhook]]\nurl = \"http://x/\"\nsecret = \"s\"\n");
  EXPECT_EQ(e.field(), "webhook");
  EXPECT_TRUE(test::says(e, "[events] enabled = false")) << e.what();
}

}  // namespace
}  // namespace kurier::engine
