// Event records: the hand-written JSON line is the same object nlohmann::json makes,
// texts from the network (quotes, control characters, invalid UTF-8) included; and
// the builders from queue records.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/core/text_format.h"
#include "engine/events/event.h"

namespace kurier::engine {
namespace {

// The same object built by nlohmann::json: the reference the hand-written line is checked against.
nlohmann::ordered_json reference_json(const EventRecord& e) {
  return {{"id", e.id},           {"type", to_string(e.type)},   {"time", iso_time(e.time_ms)},
          {"campaign", e.campaign}, {"recipient", e.recipient},  {"sender", e.sender},
          {"source", e.source},   {"mx", e.mx},                  {"ip", e.ip},
          {"tls", e.tls},         {"attempt", e.attempt},        {"code", e.code},
          {"enhanced", e.enhanced}, {"text", e.text},            {"reason", e.reason},
          {"category", e.category}, {"queued_time", iso_time(e.queued_ms)}, {"size", e.size},
          {"node", e.node}};
}


TEST(EventJson, TheLineIsTheSameObjectAsNlohmannMakes) {
  EventRecord e;
  e.id = 7;
  e.type = EventType::bounced;
  e.time_ms = 1'765'000'000'123;
  e.queued_ms = 1'765'000'000'000;
  e.campaign = "spring \"sale\"";
  e.recipient = "müller@example.com";
  e.text = std::string("550 5.1.1 <a\\b>\ttab\r\nline\x01 bad:\xC3\x28 \xED\xA0\x80 \xF0\x9F\x98\x80");
  e.code = 550;
  e.attempt = 3;
  e.size = 4096;
  const std::string line = to_json_line(e);
  EXPECT_TRUE(line.starts_with("{\"id\":7,\"type\":\"bounced\",\"time\":\"2025-12-06T05:46:40.123Z\","));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto ours = nlohmann::json::parse(line);  // throws on invalid JSON or UTF-8
  const auto theirs =
      nlohmann::json::parse(reference_json(e).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  EXPECT_EQ(ours, theirs);
  EXPECT_EQ(ours["recipient"], "müller@example.com");
  EXPECT_NE(ours["text"].get<std::string>().find("\xF0\x9F\x98\x80"), std::string::npos) << "valid UTF-8 kept";
  // A sequence cut off at the end: replaced byte by byte (nlohmann::json replaces the
  // whole cut sequence once); valid JSON either way.
  e.text = "cut:\xE2\x82";
  EXPECT_EQ(nlohmann::json::parse(to_json_line(e))["text"], "cut:\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(EventJson, TypeNamesRoundTrip) {
  for (std::size_t i = 0; i < kEventTypes; ++i) {
    const auto type = static_cast<EventType>(i);
    EXPECT_EQ(event_type_from_string(to_string(type)), type);
  }
  EXPECT_FALSE(event_type_from_string("bounce"));
}

TEST(EventBuilders, AnOutcomeCarriesItsAttempt) {
  queue::Outcome o;
  o.key = {3, 9};
  o.status.state = queue::State::deferred;
  o.status.attempts = 2;
  o.status.category = "soft";
  o.status.reason = "blocked";
  queue::Attempt a;
  a.time_ms = 5000;
  a.mx_host = "mx.example.com";
  a.mx_address = "192.0.2.7";
  a.tls = true;
  a.tls_detail = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  a.code = 451;
  a.enhanced = "4.7.1";
  a.text = "try later";
  o.attempt = a;
  auto e = outcome_event(o, {"spring", 1000}, "a@example.com", "b+x@bounce.example", 9999);
  EXPECT_EQ(e.type, EventType::deferred);
  EXPECT_EQ(e.time_ms, 5000);
  EXPECT_EQ(e.mx, "mx.example.com");
  EXPECT_EQ(e.ip, "192.0.2.7");
  EXPECT_EQ(e.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(e.code, 451);
  EXPECT_EQ(e.enhanced, "4.7.1");
  EXPECT_EQ(e.text, "try later");
  EXPECT_EQ(e.attempt, 2u);
  EXPECT_EQ(e.reason, "blocked");
  EXPECT_EQ(e.category, "soft");
  EXPECT_EQ(e.queued_ms, 1000);
  EXPECT_EQ(e.sender, "b+x@bounce.example");
  o.attempt.reset();
  o.status.state = queue::State::cancelled;
  e = outcome_event(o, {"spring", 1000}, "a@example.com", "", 9999);
  EXPECT_EQ(e.type, EventType::cancelled);
  EXPECT_EQ(e.time_ms, 9999) << "no attempt: the time of recording";
}

}  // namespace
}  // namespace kurier::engine
