// The delivery outcome policy, branch by branch (engine/delivery/outcome.h): recipient
// outcomes (2xx, 4xx, greylisting with and without a hint, throttling, 5xx hard and soft,
// expiry at max_age), site failures (DNS, connect, TLS policy) and the session's reaction
// to a reply (throttle requeue and its limit, a reused connection refused at MAIL).
#include <gtest/gtest.h>

#include "bounce/bounce.h"
#include "engine/delivery/outcome.h"

namespace kurier::engine {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr std::int64_t kCreated = 1'700'000'000'000;
constexpr std::int64_t kSecond = 1000;

RecipientHistory history(std::uint16_t attempts = 0, std::uint16_t backoff = 0) {
  RecipientHistory h;
  h.key = {7, 42};
  h.status.attempts = attempts;
  h.status.backoff = backoff;
  h.status.next_attempt_ms = kCreated + 5 * kSecond;
  h.campaign_created_ms = kCreated;
  return h;
}

queue::Attempt reply_attempt(std::int64_t time_ms, int code, std::string enhanced, std::string text) {
  queue::Attempt a;
  a.time_ms = time_ms;
  a.mx_host = "mx1.example.test";
  a.mx_address = "127.0.0.5";
  a.code = code;
  a.enhanced = std::move(enhanced);
  a.text = std::move(text);
  return a;
}

ShapingLimits limits() {
  ShapingLimits l;
  l.retry = {minutes(5), minutes(10), minutes(20)};
  l.greylist_delay = minutes(3);
  l.max_age = hours(24);
  return l;
}

Decision decide(const RecipientHistory& h, std::int64_t now, int code, const char* enhanced, const char* text,
                bool throttle_reply = false) {
  const Classification c = classify_reply(code, enhanced, text);
  return decide_outcome(h, c, reply_attempt(now, code, enhanced, text), throttle_reply, limits());
}

TEST(DecideOutcome, DeliveredOn2xx) {
  const std::int64_t now = kCreated + 60 * kSecond;
  const Decision d = decide(history(2, 1), now, 250, "2.0.0", "Ok: queued as ABC");
  const queue::Outcome& o = d.outcome;
  EXPECT_EQ(o.key.campaign, 7u);
  EXPECT_EQ(o.key.recipient, 42u);
  EXPECT_EQ(o.previous_due_ms, kCreated + 5 * kSecond);
  EXPECT_EQ(o.status.state, queue::State::delivered);
  EXPECT_EQ(o.status.attempts, 3);
  EXPECT_EQ(o.status.backoff, 1);
  EXPECT_EQ(o.status.last_attempt_ms, now);
  EXPECT_EQ(o.status.code, 250);
  EXPECT_EQ(o.status.mx, "mx1.example.test");
  EXPECT_EQ(o.status.reason, "delivered");
  ASSERT_TRUE(o.attempt);
  EXPECT_EQ(o.attempt->classification, "delivered");
  EXPECT_FALSE(d.greylisted);
}

TEST(DecideOutcome, MxAddressStandsInForAMissingHostName) {
  const Classification c = classify_reply(250, "2.0.0", "Ok");
  queue::Attempt a = reply_attempt(kCreated, 250, "2.0.0", "Ok");
  a.mx_host.clear();
  EXPECT_EQ(decide_outcome(history(), c, a, false, limits()).outcome.status.mx, "127.0.0.5");
}

TEST(DecideOutcome, TemporaryFailureFollowsTheRetryScheduleAndAdvancesIt) {
  const std::int64_t now = kCreated + 60 * kSecond;
  const Decision first = decide(history(0, 0), now, 452, "4.2.2", "Mailbox full, try later");
  EXPECT_EQ(first.outcome.status.state, queue::State::deferred);
  EXPECT_EQ(first.outcome.status.backoff, 1);
  EXPECT_EQ(first.outcome.status.next_attempt_ms, now + 5 * 60 * kSecond);
  EXPECT_EQ(first.outcome.status.category, "soft");
  EXPECT_EQ(first.outcome.attempt->classification, "deferred mailboxfull");

  const Decision second = decide(history(1, 1), now, 452, "4.2.2", "Mailbox full, try later");
  EXPECT_EQ(second.outcome.status.backoff, 2);
  EXPECT_EQ(second.outcome.status.next_attempt_ms, now + 10 * 60 * kSecond);

  // Past the end of the schedule its last delay repeats.
  const Decision late = decide(history(6, 6), now, 452, "4.2.2", "Mailbox full, try later");
  EXPECT_EQ(late.outcome.status.backoff, 7);
  EXPECT_EQ(late.outcome.status.next_attempt_ms, now + 20 * 60 * kSecond);
}

TEST(DecideOutcome, GreylistingWithAHintWaitsThatLongWithoutBackoff) {
  const std::int64_t now = kCreated + 60 * kSecond;
  const Decision d = decide(history(0, 2), now, 450, "4.2.0", "Greylisted, please retry in 90 seconds");
  EXPECT_TRUE(d.greylisted);
  EXPECT_EQ(d.outcome.status.state, queue::State::deferred);
  EXPECT_EQ(d.outcome.status.backoff, 2);
  EXPECT_EQ(d.outcome.status.next_attempt_ms, now + 90 * kSecond);
  EXPECT_EQ(d.outcome.attempt->classification, "deferred greylisted");
}

TEST(ReplyInterpreter, RecognisesGreylistingAndItsDelay) {
  const Classification hinted = classify_reply(450, "4.2.0", "Greylisted, please retry in 90 seconds");
  EXPECT_TRUE(hinted.greylisted);
  EXPECT_EQ(hinted.retry_hint, std::chrono::seconds(90));
  EXPECT_EQ(hinted.category, bounce::Category::soft);
  const Classification full = classify_reply(452, "4.2.2", "Mailbox full, try again later");
  EXPECT_FALSE(full.greylisted);
  EXPECT_FALSE(classify_reply(550, "5.7.1", "Greylisted").greylisted);  // permanent: never greylisting
  EXPECT_EQ(classify_reply(250, "2.0.0", "Ok").category, bounce::Category::none);
}

TEST(DecideOutcome, GreylistingWithoutAHintWaitsTheConfiguredDelay) {
  const std::int64_t now = kCreated + 60 * kSecond;
  const Decision d = decide(history(), now, 451, "4.7.1", "Greylisted, see http://postgrey.schweikert.ch/");
  EXPECT_TRUE(d.greylisted);
  EXPECT_EQ(d.outcome.status.backoff, 0);
  EXPECT_EQ(d.outcome.status.next_attempt_ms, now + 3 * 60 * kSecond);
}

TEST(DecideOutcome, ThrottlingReplyPastTheRequeueLimitWaitsTheFirstRetryWithoutBackoff) {
  const std::int64_t now = kCreated + 60 * kSecond;
  const Decision d = decide(history(3, 2), now, 421, "4.7.0", "Too many connections from your IP", true);
  EXPECT_EQ(d.outcome.status.state, queue::State::deferred);
  EXPECT_EQ(d.outcome.status.backoff, 2);
  EXPECT_EQ(d.outcome.status.next_attempt_ms, now + 5 * 60 * kSecond);
  EXPECT_EQ(d.outcome.attempt->classification, "deferred throttled toomanyconn");
  EXPECT_FALSE(d.greylisted);
}

TEST(DecideOutcome, PermanentFailureBouncesHardOrSoft) {
  const std::int64_t now = kCreated + 60 * kSecond;
  const Decision hard = decide(history(), now, 550, "5.1.1", "User unknown");
  EXPECT_EQ(hard.outcome.status.state, queue::State::bounced);
  EXPECT_EQ(hard.outcome.status.category, "hard");
  EXPECT_EQ(hard.outcome.status.reason, "userunknown");
  EXPECT_EQ(hard.outcome.attempt->classification, "bounced hard userunknown");

  const Decision soft = decide(history(), now, 552, "5.2.2", "Mailbox full");
  EXPECT_EQ(soft.outcome.status.state, queue::State::bounced);
  EXPECT_EQ(soft.outcome.status.category, "soft");
  EXPECT_EQ(soft.outcome.attempt->classification, "bounced soft mailboxfull");
}

TEST(DecideOutcome, ExpiresAtMaxAgeAndNeverSchedulesPastIt) {
  // At max age: the deferral is final.
  const std::int64_t at_max_age = kCreated + 24 * 3600 * kSecond;
  const Decision expired = decide(history(9, 9), at_max_age, 451, "4.3.0", "Temporary local problem");
  EXPECT_EQ(expired.outcome.status.state, queue::State::expired);
  EXPECT_EQ(expired.outcome.status.category, "soft");
  EXPECT_EQ(expired.outcome.status.reason, "expired");
  EXPECT_EQ(expired.outcome.attempt->classification.rfind("expired (last: ", 0), 0u)
      << expired.outcome.attempt->classification;

  // Just before: the last retry is due at max age exactly, not after it.
  const std::int64_t near = at_max_age - 60 * kSecond;
  const Decision last = decide(history(9, 9), near, 451, "4.3.0", "Temporary local problem");
  EXPECT_EQ(last.outcome.status.state, queue::State::deferred);
  EXPECT_EQ(last.outcome.status.next_attempt_ms, at_max_age);
}

TEST(SiteFailure, NxdomainBouncesHostunknown) {
  const SiteFailure f = dns_site_failure(dns::Status::nxdomain, "no such domain");
  EXPECT_EQ(f.classification.disposition, Disposition::bounced);
  EXPECT_EQ(f.classification.category, bounce::Category::hard);
  EXPECT_EQ(f.classification.reason, "hostunknown");
  EXPECT_EQ(f.attempt.enhanced, "5.1.2");
  EXPECT_EQ(f.attempt.text, std::string("DNS: ") + dns::to_string(dns::Status::nxdomain) + ": no such domain");
}

TEST(SiteFailure, NullMxBouncesNotaccept) {
  const SiteFailure f = dns_site_failure(dns::Status::null_mx, "");
  EXPECT_EQ(f.classification.disposition, Disposition::bounced);
  EXPECT_EQ(f.classification.reason, "notaccept");
  EXPECT_EQ(f.attempt.enhanced, "5.1.10");
  EXPECT_EQ(f.attempt.text, std::string("DNS: ") + dns::to_string(dns::Status::null_mx));
}

TEST(SiteFailure, ServfailDefersAsNetworkError) {
  const SiteFailure f = dns_site_failure(dns::Status::temporary, "SERVFAIL");
  EXPECT_EQ(f.classification.disposition, Disposition::deferred);
  EXPECT_EQ(f.classification.category, bounce::Category::soft);
  EXPECT_EQ(f.classification.reason, "networkerror");
  EXPECT_EQ(f.attempt.enhanced, "4.4.3");
  // Applied to a recipient it is an ordinary deferral on the retry schedule.
  queue::Attempt a = f.attempt;
  a.time_ms = kCreated + kSecond;
  const Decision d = decide_outcome(history(), f.classification, a, false, limits());
  EXPECT_EQ(d.outcome.status.state, queue::State::deferred);
  EXPECT_EQ(d.outcome.status.next_attempt_ms, kCreated + kSecond + 5 * 60 * kSecond);
}

smtp::ConnectFailure refused(smtp::Phase phase, int code, std::string enhanced, std::string text) {
  smtp::ConnectFailure f;
  f.target = {"mx1.example.test", "127.0.0.5"};
  f.phase = phase;
  f.reply.code = code;
  f.reply.enhanced = std::move(enhanced);
  f.reply.text = std::move(text);
  return f;
}

TEST(SiteFailure, RefusedConnectionsDeferAndNameEveryAddressTried) {
  smtp::ConnectFailure a = refused(smtp::Phase::connect, 0, "", "");
  a.error = make_error_code(boost::system::errc::connection_refused);
  smtp::ConnectFailure b = a;
  b.target = {"mx2.example.test", "127.0.0.6"};
  const SiteFailure f = connect_site_failure({a, b}, "opportunistic", bounce::Rules::builtin());
  EXPECT_EQ(f.classification.disposition, Disposition::deferred);
  EXPECT_EQ(f.classification.reason, "networkerror");
  EXPECT_EQ(f.attempt.mx_host, "mx2.example.test");
  EXPECT_EQ(f.attempt.mx_address, "127.0.0.6");
  EXPECT_EQ(f.attempt.text, "connect: " + b.error.message() + " (2 MX addresses tried)");
}

TEST(SiteFailure, APermanentGreetingIsDeferredNeverHard) {
  const SiteFailure f = connect_site_failure({refused(smtp::Phase::greeting, 554, "5.1.1", "No such user here")},
                                             "opportunistic", bounce::Rules::builtin());
  EXPECT_EQ(f.classification.disposition, Disposition::deferred);
  EXPECT_EQ(f.classification.category, bounce::Category::soft);
  EXPECT_EQ(f.attempt.code, 554);
  EXPECT_EQ(f.attempt.text, "greeting: No such user here");
}

TEST(SiteFailure, TlsPolicyFailuresNameThePolicy) {
  smtp::ConnectFailure starttls = refused(smtp::Phase::starttls, 0, "", "");
  starttls.detail = "server does not offer STARTTLS";
  const SiteFailure required = connect_site_failure({starttls}, "required", bounce::Rules::builtin());
  EXPECT_EQ(required.classification.disposition, Disposition::deferred);
  EXPECT_EQ(required.attempt.text, "starttls: server does not offer STARTTLS (tls policy: required)");

  smtp::ConnectFailure sts;
  sts.phase = smtp::Phase::mta_sts;
  sts.detail = "no MX host matches the policy";
  const SiteFailure enforce = connect_site_failure({sts}, "mta-sts enforce", bounce::Rules::builtin());
  EXPECT_EQ(enforce.classification.disposition, Disposition::deferred);
  EXPECT_EQ(enforce.attempt.text, "mta-sts: no MX host matches the policy (tls policy: mta-sts enforce)");
}

TEST(SiteFailure, NoAddressToTry) {
  const SiteFailure f = connect_site_failure({}, "opportunistic", bounce::Rules::builtin());
  EXPECT_EQ(f.attempt.text, "no MX address to try");
  EXPECT_EQ(f.classification.disposition, Disposition::deferred);
}

TEST(ConnectFailurePolicy, AThrottlingRefusalWaitsUpToTheLimit) {
  EXPECT_FALSE(defer_queue_after_connect_failure(true, 1, 0));
  EXPECT_FALSE(defer_queue_after_connect_failure(true, kMaxThrottledConnects, 0));
  EXPECT_TRUE(defer_queue_after_connect_failure(true, kMaxThrottledConnects + 1, 0));
}

TEST(ConnectFailurePolicy, AConnectedSessionKeepsTheQueue) {
  EXPECT_TRUE(defer_queue_after_connect_failure(false, 0, 0));
  EXPECT_FALSE(defer_queue_after_connect_failure(false, 0, 1));
  EXPECT_FALSE(defer_queue_after_connect_failure(true, kMaxThrottledConnects + 1, 2));
}

TEST(ReplyStep, ThrottlingRequeuesUntilTheLimitThenRecords) {
  for (int times = 0; times < kMaxThrottleRequeues; ++times) {
    const ReplyReaction r = reply_step(true, times, false, 0);
    EXPECT_EQ(r.step, ReplyStep::requeue) << times;
    EXPECT_FALSE(r.throttle_reply);
  }
  const ReplyReaction last = reply_step(true, kMaxThrottleRequeues, false, 0);
  EXPECT_EQ(last.step, ReplyStep::record);
  EXPECT_TRUE(last.throttle_reply);
  // A throttling 421 past the limit on a reused connection is recorded too, not requeued.
  const ReplyReaction reused = reply_step(true, kMaxThrottleRequeues, true, 5);
  EXPECT_EQ(reused.step, ReplyStep::record);
  EXPECT_TRUE(reused.throttle_reply);
}

TEST(ReplyStep, AReusedConnectionRefusedAtMailRequeues) {
  EXPECT_EQ(reply_step(false, 0, true, 1).step, ReplyStep::requeue);
  // On the connection's first message the refusal is the recipient's attempt.
  EXPECT_EQ(reply_step(false, 0, true, 0).step, ReplyStep::record);
  EXPECT_EQ(reply_step(false, 0, false, 3).step, ReplyStep::record);
}

TEST(ReplyStep, RefusedBeforeMail) {
  EXPECT_TRUE(refused_before_mail(421, smtp::Phase::none));
  EXPECT_TRUE(refused_before_mail(0, smtp::Phase::mail));
  EXPECT_FALSE(refused_before_mail(0, smtp::Phase::data));
  EXPECT_FALSE(refused_before_mail(450, smtp::Phase::none));
  EXPECT_FALSE(refused_before_mail(250, smtp::Phase::none));
}

}  // namespace
}  // namespace kurier::engine
