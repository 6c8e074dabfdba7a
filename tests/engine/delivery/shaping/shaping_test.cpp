// Shaping rules (shaping.toml parsing, errors with file/line/key, routing by domain and
// MX), greylist recognition, and the throttle state machine driven by explicit times.
#include <gtest/gtest.h>

#include "engine/core/input_error.h"
#include "engine/delivery/classify.h"
#include "engine/delivery/shaping/shaping.h"
#include "tests/common/process.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

constexpr std::int64_t kT0 = 1'700'000'000'000;  // an arbitrary epoch millisecond

InputError parse_error(const std::string& text) {
  return test::input_error_of([&] { parse_shaping(text, "shaping.toml"); }, text);
}

TEST(ShapingFile, ShippedDefaultsParseAndRouteTheBigProviders) {
  ShapingRules rules = load_shaping(test::source_path("data/shaping.toml"));
  ASSERT_EQ(rules.providers.size(), 6u);
  EXPECT_EQ(rules.providers[0].name, "google") << "file order is kept";
  EXPECT_EQ(rules.defaults.max_age, std::chrono::hours(24 * 5));
  Shaper shaper(rules);
  EXPECT_EQ(shaper.route("gmail.com", {}).provider, "google");
  EXPECT_EQ(shaper.route("example-workspace.org", {"aspmx.l.google.com"}).provider, "google");
  EXPECT_EQ(shaper.route("contoso.com", {"contoso-com.mail.protection.outlook.com"}).provider, "microsoft");
  EXPECT_EQ(shaper.route("hotmail.co.uk", {}).provider, "microsoft");
  EXPECT_EQ(shaper.route("aol.com", {}).provider, "yahoo");
  EXPECT_EQ(shaper.route("someisp.example", {"mta7.am0.yahoodns.net"}).provider, "yahoo");
  EXPECT_EQ(shaper.route("me.com", {}).provider, "apple");
  EXPECT_EQ(shaper.route("web.de", {}).provider, "united-internet");
  EXPECT_EQ(shaper.route("club.example", {"mx00.gmx.net"}).provider, "united-internet");
  EXPECT_EQ(shaper.route("t-online.de", {}).provider, "t-online");
  auto plain = shaper.route("small.example", {"mx.small.example"});
  EXPECT_EQ(plain.provider, "");
  EXPECT_EQ(plain.key, "small.example");
  EXPECT_EQ(plain.limits->connections, 10);
  // Yahoo's TS03 suspends for hours, before the built-in rules are consulted.
  auto yahoo = shaper.throttle_for("yahoo.com", {});
  EXPECT_EQ(yahoo->on_reply(421, "4.7.0", "[TS03] All messages from 192.0.2.1 will be permanently deferred", kT0),
            ThrottleAction::suspend);
  EXPECT_EQ(yahoo->suspended_until(kT0), kT0 + 4 * 3600 * 1000);
}

TEST(ShapingFile, ProvidersAndDomainsInheritTheDefaultBlock) {
  ShapingRules rules = parse_shaping(R"(
[default]
connections = 7
rate = "300/m"
retry = ["1m", "2m"]
max_age = "2d"
greylist_delay = "90s"
[provider.big]
match_mx = ["*.big.example"]
connections = 3
[[provider.big.on_reply]]
pattern = 'slow down'
action = "suspend"
duration = "2m"
[domain."Special.Example"]
messages_per_connection = 5
[[throttle]]
pattern = '^452 .*busy'
)",
                                     "shaping.toml");
  ASSERT_EQ(rules.providers.size(), 1u);
  const auto& big = rules.providers[0];
  EXPECT_EQ(big.limits.connections, 3);
  EXPECT_DOUBLE_EQ(big.limits.rate.per_second, 5.0);
  EXPECT_EQ(big.limits.retry.size(), 2u);
  EXPECT_EQ(big.limits.max_age, std::chrono::hours(48));
  EXPECT_EQ(big.limits.greylist_delay, seconds(90));
  ASSERT_EQ(big.on_reply.size(), 1u);
  EXPECT_EQ(big.on_reply[0].action, ThrottleAction::suspend);
  EXPECT_EQ(big.on_reply[0].duration, minutes(2));
  ASSERT_EQ(rules.domains.count("special.example"), 1u) << "domain names are lower-cased";
  EXPECT_EQ(rules.domains.at("special.example").limits.messages_per_connection, 5);
  EXPECT_EQ(rules.domains.at("special.example").limits.connections, 7);
  ASSERT_EQ(rules.throttle.size(), 1u);
  EXPECT_EQ(rules.throttle[0].action, ThrottleAction::slow) << "slow is the default action";

  Shaper shaper(rules);
  EXPECT_TRUE(shaper.needs_mx("a.example"));
  EXPECT_FALSE(shaper.needs_mx("special.example"));
  // Two domains hosted at the same provider share one throttle: one pool, one rate.
  auto a = shaper.throttle_for("a.example", {"mx1.big.example"});
  auto b = shaper.throttle_for("b.example", {"mx2.big.example", "backup.other.example"});
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a->key(), "big");
  EXPECT_EQ(shaper.throttle_for("special.example", {"mx1.big.example"})->key(), "domain:special.example");
  EXPECT_EQ(shaper.throttle_for("c.example", {"mx.c.example"})->key(), "c.example");
  // Only the most preferred MX decides.
  EXPECT_EQ(shaper.route("d.example", {"mx.d.example", "mx1.big.example"}).provider, "");
  // The provider's own rule first, then the global [[throttle]], then the built-ins.
  EXPECT_EQ(a->on_reply(451, "4.3.0", "please slow down", kT0), ThrottleAction::suspend);
  auto c = shaper.throttle_for("c.example", {});
  EXPECT_EQ(c->on_reply(452, "4.3.1", "server busy", kT0), ThrottleAction::slow);
  EXPECT_EQ(c->on_reply(450, "4.2.0", "Greylisted, see http://postgrey.schweikert.ch/help/c.example.html", kT0),
            ThrottleAction::none);
}

TEST(ShapingFile, ErrorsNameFileLineAndKey) {
  auto e = parse_error("[default]\nconnections = 5\nrate = \"fast\"\n");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "default.rate");
  EXPECT_NE(std::string(e.what()).find("shaping.toml:3: field 'default.rate'"), std::string::npos) << e.what();

  e = parse_error("[provider.x]\nmatch_mx = [\"*.x.example\"]\nconections = 3\n");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "provider.x.conections");
  EXPECT_NE(std::string(e.what()).find("unknown key"), std::string::npos);

  e = parse_error("[provider.x]\nconnections = 3\n");
  EXPECT_EQ(e.field(), "provider.x.match_domains");

  e = parse_error("[provider.x]\nmatch_domains = [\"x.example\"]\n[[provider.x.on_reply]]\npattern = '(unclosed'\n");
  EXPECT_EQ(e.line(), 4u);
  EXPECT_EQ(e.field(), "provider.x.on_reply.pattern");

  e = parse_error("[[throttle]]\npattern = 'x'\naction = \"panic\"\n");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "throttle.action");

  e = parse_error("[default]\nretry = [\"5m\", \"soon\"]\n");
  EXPECT_EQ(e.line(), 2u);
  EXPECT_EQ(e.field(), "default.retry");

  e = parse_error("[default]\nconnections = 0\n");
  EXPECT_EQ(e.field(), "default.connections");

  e = parse_error("[defaults]\nconnections = 1\n");
  EXPECT_EQ(e.line(), 1u);
  EXPECT_EQ(e.field(), "defaults");

  e = parse_error("[default\n");
  EXPECT_EQ(e.line(), 1u);

  try {
    load_shaping("/nonexistent/shaping.toml");
    ADD_FAILURE() << "no error";
  } catch (const InputError& error) {
    EXPECT_EQ(error.file(), "/nonexistent/shaping.toml");
  }
}

TEST(ShapingFile, RatesAndGlobs) {
  EXPECT_DOUBLE_EQ(parse_rate("1000/s")->per_second, 1000);
  EXPECT_DOUBLE_EQ(parse_rate("20000/h")->per_second, 20000.0 / 3600);
  EXPECT_DOUBLE_EQ(parse_rate("0.5/s")->per_second, 0.5);
  EXPECT_DOUBLE_EQ(parse_rate("120/m")->per_second, 2);
  EXPECT_FALSE(parse_rate("0/s"));
  EXPECT_FALSE(parse_rate("10"));
  EXPECT_FALSE(parse_rate("10/week"));
  EXPECT_FALSE(parse_rate("x/s"));
  EXPECT_TRUE(host_glob_match("*.google.com", "ASPMX.L.Google.com"));
  EXPECT_FALSE(host_glob_match("*.google.com", "google.com"));
  EXPECT_TRUE(host_glob_match("mx*.gmx.net", "mx01.gmx.net"));
  EXPECT_FALSE(host_glob_match("mx*.gmx.net", "mail.gmx.net"));
  EXPECT_TRUE(host_glob_match("hotmail.*", "hotmail.co.uk"));
}

TEST(Greylist, RecognisesPostgreyPostfixAndHintedReplies) {
  EXPECT_TRUE(is_greylist_reply(450, "4.2.0",
                                "<u@x.test>: Recipient address rejected: Greylisted, see "
                                "http://postgrey.schweikert.ch/help/x.test.html"));
  EXPECT_TRUE(is_greylist_reply(451, "4.7.1", "Please try again later"));
  EXPECT_TRUE(is_greylist_reply(451, "4.7.0", "Greylisting in action, please retry in 90 seconds"));
  EXPECT_TRUE(is_greylist_reply(450, "", "greylisted, try again later"));
  EXPECT_FALSE(is_greylist_reply(452, "4.2.2", "Mailbox full, try again later"));
  EXPECT_FALSE(is_greylist_reply(450, "4.2.2", "Mailbox full, try again later"));
  EXPECT_FALSE(is_greylist_reply(421, "4.7.0", "Too many connections, try again later"));
  EXPECT_FALSE(is_greylist_reply(550, "5.7.1", "greylisted forever"));
  EXPECT_FALSE(is_greylist_reply(250, "2.0.0", "Ok"));

  EXPECT_EQ(greylist_hint("Greylisting in action, please retry in 90 seconds"), seconds(90));
  EXPECT_EQ(greylist_hint("Greylisted for 5 minutes"), seconds(300));
  EXPECT_EQ(greylist_hint("try again in 2 min"), seconds(120));
  EXPECT_EQ(greylist_hint("Greylisted for 1 seconds"), seconds(1));
  EXPECT_EQ(greylist_hint("Greylisted, see http://postgrey.schweikert.ch/help/x.test.html"), std::nullopt);
  EXPECT_EQ(greylist_hint("4.7.1 greylisted"), std::nullopt) << "a status code is not a delay";
}

ShapingLimits limits_with(int connections, double rate, seconds recovery = seconds(10)) {
  ShapingLimits l;
  l.connections = connections;
  l.rate.per_second = rate;
  l.recovery_interval = recovery;
  return l;
}

ThrottleRule slow_rule = make_throttle_rule("too many", ThrottleAction::slow, seconds(60));
ThrottleRule suspend_rule = make_throttle_rule("go away", ThrottleAction::suspend, seconds(30));

TEST(Throttle, PacesMessagesWithGcraAndRefusesLongWaits) {
  Throttle t("k", "", limits_with(5, 10), {});
  EXPECT_EQ(t.reserve_message(kT0, 1000), kT0);
  EXPECT_EQ(t.reserve_message(kT0, 1000), kT0 + 100);
  EXPECT_EQ(t.reserve_message(kT0, 1000), kT0 + 200);
  EXPECT_EQ(t.reserve_message(kT0 + 150, 1000), kT0 + 300) << "slots are kept in order";
  // Idle time is not saved up as a burst.
  EXPECT_EQ(t.reserve_message(kT0 + 10'000, 1000), kT0 + 10'000);
  EXPECT_EQ(t.reserve_message(kT0 + 10'000, 1000), kT0 + 10'100);
  // Nothing is reserved when the slot is too far ahead.
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(t.reserve_message(kT0 + 10'000, 1000));
  EXPECT_EQ(t.reserve_message(kT0 + 10'000, 1000), kT0 + 11'000);
  EXPECT_EQ(t.reserve_message(kT0 + 10'000, 1000), std::nullopt);
  EXPECT_EQ(t.reserve_message(kT0 + 10'000, 2000), kT0 + 11'100);

  Throttle unlimited("u", "", limits_with(5, 0), {});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(unlimited.reserve_message(kT0, 0), kT0);
}

TEST(Throttle, ConnectionSlotsAndConnectionRate) {
  ShapingLimits l = limits_with(2, 0);
  l.connection_rate.per_second = 2;  // one new connection per 500 ms
  Throttle t("k", "", l, {});
  EXPECT_TRUE(t.try_open_connection(kT0).ok);
  auto gate = t.try_open_connection(kT0);
  EXPECT_FALSE(gate.ok);
  EXPECT_EQ(gate.retry_at_ms, kT0 + 500);
  EXPECT_TRUE(t.try_open_connection(kT0 + 500).ok);
  EXPECT_FALSE(t.try_open_connection(kT0 + 5000).ok) << "both slots taken";
  t.connection_closed();
  EXPECT_TRUE(t.try_open_connection(kT0 + 5000).ok);
}

TEST(Throttle, SlowHalvesWhatIsInUseThenRecoversAdditively) {
  Throttle t("k", "p", limits_with(20, 100, seconds(10)), {&slow_rule});
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(t.try_open_connection(kT0).ok);
  EXPECT_EQ(t.on_reply(250, "2.0.0", "ok", kT0), ThrottleAction::none);
  EXPECT_EQ(t.on_reply(421, "4.7.0", "Too many connections", kT0), ThrottleAction::slow);
  auto s = t.snapshot(kT0);
  EXPECT_EQ(s.connection_limit, 3) << "half of the 6 open, not of the 20 allowed";
  EXPECT_DOUBLE_EQ(s.rate_limit, 50);
  EXPECT_EQ(s.slowed_until_ms, kT0 + 60'000);
  EXPECT_TRUE(t.over_connection_limit(kT0)) << "sessions above the new limit give way";
  // The same overload seen by other sessions within a second: no second halving.
  EXPECT_EQ(t.on_reply(421, "4.7.0", "Too many connections", kT0 + 300), ThrottleAction::slow);
  EXPECT_EQ(t.snapshot(kT0 + 300).connection_limit, 3);
  // A new connection waits out the reconnect pause, then the slot count.
  EXPECT_FALSE(t.try_open_connection(kT0 + 500).ok);
  for (int i = 0; i < 6; ++i) t.connection_closed();
  EXPECT_TRUE(t.try_open_connection(kT0 + 1500).ok);
  t.connection_closed();
  // Later evidence halves again.
  t.on_reply(421, "4.7.0", "too many messages in this session", kT0 + 2000);
  s = t.snapshot(kT0 + 2000);
  EXPECT_EQ(s.connection_limit, 1);
  EXPECT_DOUBLE_EQ(s.rate_limit, 25);
  // Held until 60 s after the last reaction, then one step per recovery interval.
  EXPECT_EQ(t.snapshot(kT0 + 61'000).connection_limit, 1);
  s = t.snapshot(kT0 + 62'000 + 10'000);
  EXPECT_EQ(s.connection_limit, 2);
  EXPECT_DOUBLE_EQ(s.rate_limit, 35);
  s = t.snapshot(kT0 + 62'000 + 30'000);
  EXPECT_EQ(s.connection_limit, 4);
  EXPECT_DOUBLE_EQ(s.rate_limit, 55);
  s = t.snapshot(kT0 + 62'000 + 200'000);
  EXPECT_EQ(s.connection_limit, 20) << "back to the configured limits, not beyond";
  EXPECT_DOUBLE_EQ(s.rate_limit, 100);
  EXPECT_EQ(s.throttle_events, 3u);
}

TEST(Throttle, SlowWithoutConfiguredRateHalvesTheObservedRate) {
  Throttle t("k", "", limits_with(10, 0, seconds(5)), {&slow_rule});
  // The first (partial) second is no measurement: only connections are cut.
  for (int i = 0; i < 50; ++i) ASSERT_EQ(t.reserve_message(kT0 + 500 + i * 10, 0), kT0 + 500 + i * 10);
  t.on_reply(421, "", "too many", kT0 + 1000);
  EXPECT_DOUBLE_EQ(t.snapshot(kT0 + 1000).rate_limit, 0);
  // 80 messages in the next whole second, then a reaction: half of 80/s.
  for (int i = 0; i < 80; ++i) ASSERT_EQ(t.reserve_message(kT0 + 1000 + i * 10, 0), kT0 + 1000 + i * 10);
  ASSERT_TRUE(t.reserve_message(kT0 + 2100, 0));
  t.on_reply(421, "", "too many", kT0 + 2200);
  EXPECT_DOUBLE_EQ(t.snapshot(kT0 + 2200).rate_limit, 40);
  EXPECT_EQ(t.reserve_message(kT0 + 3000, 5000), kT0 + 3000);
  EXPECT_EQ(t.reserve_message(kT0 + 3000, 5000), kT0 + 3025);
  // Recovery grows back to the rate seen at the slow-down, then the limit is lifted.
  auto s = t.snapshot(kT0 + 2200 + 60'000 + 5'000 * 20);
  EXPECT_DOUBLE_EQ(s.rate_limit, 0);
  EXPECT_EQ(s.connection_limit, 10);
}

TEST(Throttle, SuspendStopsEverythingUntilItEnds) {
  Throttle t("k", "", limits_with(4, 10, seconds(10)), {&slow_rule, &suspend_rule});
  ASSERT_TRUE(t.try_open_connection(kT0).ok);
  ASSERT_TRUE(t.try_open_connection(kT0).ok);
  EXPECT_EQ(t.on_reply(554, "5.7.1", "Go away", kT0), ThrottleAction::suspend);
  EXPECT_EQ(t.suspended_until(kT0), kT0 + 30'000);
  EXPECT_TRUE(t.over_connection_limit(kT0 + 1));
  EXPECT_EQ(t.reserve_message(kT0 + 1, 100'000), std::nullopt);
  auto gate = t.try_open_connection(kT0 + 10);
  EXPECT_FALSE(gate.ok);
  EXPECT_EQ(gate.retry_at_ms, kT0 + 30'000);
  t.connection_closed();
  t.connection_closed();
  EXPECT_EQ(t.suspended_until(kT0 + 30'000), 0);
  EXPECT_TRUE(t.try_open_connection(kT0 + 30'000).ok);
  auto s = t.snapshot(kT0 + 30'000);
  EXPECT_EQ(s.connection_limit, 1) << "resumes slowed (half of the 2 in use)";
  EXPECT_DOUBLE_EQ(s.rate_limit, 5);
  EXPECT_EQ(t.snapshot(kT0 + 50'000).connection_limit, 3) << "then recovers step by step";
}

TEST(Throttle, BuiltInRulesKnowTheCommonThrottlingReplies) {
  std::vector<const ThrottleRule*> rules;
  for (const auto& r : builtin_throttle_rules()) rules.push_back(&r);
  Throttle t("k", "", limits_with(4, 0), rules);
  std::int64_t now = kT0;
  auto action = [&](int code, const char* enhanced, const char* text) {
    now += 10'000'000;  // each on its own, far apart
    return t.on_reply(code, enhanced, text, now);
  };
  EXPECT_EQ(action(421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail"), ThrottleAction::slow);
  EXPECT_EQ(action(451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]"), ThrottleAction::slow);
  EXPECT_EQ(action(421, "4.7.0", "[TS01] Messages from 192.0.2.1 temporarily deferred"), ThrottleAction::suspend);
  EXPECT_EQ(action(421, "4.7.0", "[TS03] All messages from 192.0.2.1 will be permanently deferred"),
            ThrottleAction::suspend);
  EXPECT_EQ(action(421, "4.7.0", "Too many connections"), ThrottleAction::slow);
  EXPECT_EQ(action(421, "4.7.0", "Rate limit exceeded, try again later"), ThrottleAction::slow);
  EXPECT_EQ(action(450, "4.2.0", "Recipient address rejected: Greylisted"), ThrottleAction::none);
  EXPECT_EQ(action(452, "4.2.2", "Mailbox full"), ThrottleAction::none);
  EXPECT_EQ(action(421, "4.3.2", "Service shutting down"), ThrottleAction::none);
}

}  // namespace
}  // namespace kurier::engine
