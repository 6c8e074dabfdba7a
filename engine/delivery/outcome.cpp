// The delivery outcome policy (engine/delivery/outcome.h): pure functions from an
// attempt's result to the recipient's next state. Any thread; never fails.
#include "engine/delivery/outcome.h"

#include <algorithm>
#include <chrono>
#include <string>

namespace kurier::engine {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// The retry delay of a deferral, and the word the attempt log gives it.
struct Delay {
  std::chrono::seconds delay;
  std::string kind;
  bool greylisted = false;
  bool counts = false;  // advances the recipient's backoff
};

// Greylisting and throttling are the server pacing us, not a failure of this
// recipient: their own delay, and the retry schedule does not advance.
Delay deferral_delay(const Classification& c, bool throttle_reply,
                     std::uint16_t backoff, const ShapingLimits& limits) {
  if (c.greylisted) return {c.retry_hint.value_or(limits.greylist_delay), "greylisted", true, false};
  const auto& retry = limits.retry;
  if (throttle_reply) return {retry.front(), "throttled " + c.reason, false, false};
  const auto next = static_cast<std::uint16_t>(backoff + 1);
  return {retry[std::min<std::size_t>(next - 1u, retry.size() - 1)], c.reason, false, true};
}

}  // namespace

Decision decide_outcome(const RecipientHistory& history, const Classification& c, queue::Attempt attempt,
                        bool throttle_reply, const ShapingLimits& limits) {
  const auto now = attempt.time_ms;
  Decision decision;
  queue::Outcome& outcome = decision.outcome;
  outcome.key = history.key;
  outcome.previous_due_ms = history.status.next_attempt_ms;
  queue::Status& s = outcome.status;
  s.attempts = static_cast<std::uint16_t>(history.status.attempts + 1);
  s.last_attempt_ms = now;
  s.code = attempt.code;
  s.enhanced = attempt.enhanced;
  s.mx = attempt.mx_host.empty() ? attempt.mx_address : attempt.mx_host;
  s.category = bounce::to_string(c.category);
  s.reason = c.reason;
  s.backoff = history.status.backoff;
  switch (c.disposition) {
    case Disposition::delivered:
      s.state = queue::State::delivered;
      attempt.classification = "delivered";
      break;
    case Disposition::bounced:
      s.state = queue::State::bounced;
      attempt.classification = "bounced " + s.category + " " + c.reason;
      break;
    case Disposition::deferred: {
      const Delay d = deferral_delay(c, throttle_reply, s.backoff, limits);
      decision.greylisted = d.greylisted;
      if (d.counts) s.backoff = static_cast<std::uint16_t>(s.backoff + 1);
      if (milliseconds(now - history.campaign_created_ms) >= limits.max_age) {
        s.state = queue::State::expired;
        s.category = "soft";
        s.reason = "expired";
        attempt.classification = "expired (last: " + c.reason + ")";
      } else {
        s.state = queue::State::deferred;
        const auto expiry = history.campaign_created_ms + duration_cast<milliseconds>(limits.max_age).count();
        s.next_attempt_ms = std::min(now + duration_cast<milliseconds>(d.delay).count(), expiry);
        attempt.classification = "deferred " + d.kind;
      }
      break;
    }
  }
  outcome.attempt = std::move(attempt);
  return decision;
}

SiteFailure dns_site_failure(dns::Status status, std::string_view detail) {
  SiteFailure f;
  Classification& c = f.classification;
  if (dns::is_permanent(status)) {
    c.disposition = Disposition::bounced;
    c.reason = status == dns::Status::null_mx ? "notaccept" : "hostunknown";
    c.category = bounce::Category::hard;
    f.attempt.enhanced = status == dns::Status::null_mx ? "5.1.10" : "5.1.2";
  } else {
    c.disposition = Disposition::deferred;
    c.reason = "networkerror";
    c.category = bounce::Category::soft;
    f.attempt.enhanced = "4.4.3";
  }
  f.attempt.text = std::string("DNS: ") + dns::to_string(status) + (detail.empty() ? "" : ": " + std::string(detail));
  return f;
}

SiteFailure connect_site_failure(const std::vector<smtp::ConnectFailure>& failures, std::string_view tls_label,
                                 const bounce::Rules& rules) {
  SiteFailure f;
  queue::Attempt& a = f.attempt;
  if (failures.empty()) {
    a.text = "no MX address to try";
  } else {
    const auto& last = failures.back();
    a.mx_host = last.target.host;
    a.mx_address = last.target.address;
    a.code = last.reply.code;
    a.enhanced = last.reply.enhanced;
    a.text = std::string(smtp::to_string(last.phase)) + ": " +
             (last.reply.code ? last.reply.text : last.detail.empty() ? last.error.message() : last.detail);
    // A TLS refusal is the policy's doing: name it.
    if (last.phase == smtp::Phase::starttls || last.phase == smtp::Phase::mta_sts)
      a.text += " (tls policy: " + std::string(tls_label) + ")";
    if (failures.size() > 1) a.text += " (" + std::to_string(failures.size()) + " MX addresses tried)";
  }
  f.classification = classify_reply(a.code, a.enhanced, a.text, rules);
  // A site that refuses to talk is a site-level problem: defer, never bounce.
  f.classification.disposition = Disposition::deferred;
  if (f.classification.hard()) f.classification.category = bounce::Category::soft;
  return f;
}

bool defer_queue_after_connect_failure(bool throttling_refusal, int throttled_connects_in_a_row,
                                       int connected_sessions) {
  if (throttling_refusal && throttled_connects_in_a_row <= kMaxThrottledConnects) return false;
  return connected_sessions == 0;
}

ReplyReaction reply_step(bool throttling, int times_throttled, bool refused_before_mail, int sent_on_connection) {
  ReplyReaction reaction;
  if (throttling) {
    if (times_throttled < kMaxThrottleRequeues) return {ReplyStep::requeue, false};
    reaction.throttle_reply = true;
  }
  // Not a throttling reply past the requeue limit: that one is recorded.
  if (refused_before_mail && sent_on_connection > 0 && !reaction.throttle_reply) reaction.step = ReplyStep::requeue;
  return reaction;
}

bool refused_before_mail(int code, smtp::Phase error_phase) {
  return code == 421 || (code == 0 && error_phase == smtp::Phase::mail);
}

}  // namespace kurier::engine
