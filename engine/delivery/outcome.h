// The delivery outcome policy, in the manner of Postfix's smtp_trouble.c: what the result
// of an attempt means for the recipients it concerns, split by scope.
//   - site failures (dns_site_failure, connect_site_failure): the destination could not
//     be reached at all (DNS, every MX address, the TLS policy); every recipient queued
//     for it gets the same classification and attempt record;
//   - recipient outcomes (decide_outcome): one reply to one recipient's transaction gives
//     its next state and due time: delivered, bounced, deferred on the retry schedule (or
//     a greylister's / throttle's own delay), or expired at max_age;
//   - the session's reaction to a reply (reply_step): record it, or put the recipient back
//     in front of the ready queue because the reply was about the connection or pacing.
// Pure functions: no clock (times come in the attempt), no I/O, no shared state; any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "dns/mx_resolver.h"
#include "engine/delivery/classify.h"
#include "engine/delivery/shaping/shaping.h"
#include "queue/store.h"

namespace kurier::engine {

// A recipient whose transaction drew a throttling reply goes back to the ready queue
// (no attempt counted) this many times; after that the reply is recorded as a deferral,
// so a server that throttles forever still ends in `expired`, never in a loop.
inline constexpr int kMaxThrottleRequeues = 3;
// Connects refused with a throttling reply in a row before the destination's queue is
// deferred like any other refused connect.
inline constexpr int kMaxThrottledConnects = 5;

// What the queue knew of a recipient before this attempt.
struct RecipientHistory {
  queue::RecipientKey key;
  queue::Status status;                  // as due() returned it
  std::int64_t campaign_created_ms = 0;  // max_age counts from here
};

struct Decision {
  queue::Outcome outcome;   // new status and the attempt record (address update: the caller's)
  bool greylisted = false;  // deferred by a greylisting reply (its own delay)
};

// One recipient's attempt: `attempt` carries the time, MX, reply and TLS facts;
// `classification` says what the reply means; `throttle_reply` marks a throttling reply
// recorded after kMaxThrottleRequeues (retried after the first retry delay, the backoff
// does not advance). Greylisting replies take the server's hint or limits.greylist_delay
// and do not advance the backoff either. A deferral past max_age is `expired`; the last
// retry is scheduled at max_age exactly, so expiry is decided by a real reply.
Decision decide_outcome(const RecipientHistory& history, const Classification& classification,
                        queue::Attempt attempt, bool throttle_reply, const ShapingLimits& limits);

// A failure of the whole destination, applied to each recipient queued for it. The
// attempt has no time yet: the caller stamps each recipient's copy.
struct SiteFailure {
  Classification classification;
  queue::Attempt attempt;
};

// NXDOMAIN and null MX (RFC 7505) bounce (hostunknown 5.1.2, notaccept 5.1.10); a
// temporary DNS failure (SERVFAIL, timeout, no address for any MX host) defers as
// networkerror 4.4.3.
SiteFailure dns_site_failure(dns::Status status, std::string_view detail);

// No MX address gave a usable session. Never a bounce: a site that refuses to talk is
// deferred (a hard category becomes soft). The text names the phase that failed, the
// TLS policy when TLS was the cause, and how many addresses were tried.
SiteFailure connect_site_failure(const std::vector<smtp::ConnectFailure>& failures, std::string_view tls_label,
                                 const bounce::Rules& rules);

// After a refused connect: true when the destination's queue is deferred now. Not while
// a throttling refusal (421 "too many connections") is within kMaxThrottledConnects in a
// row — the key slows down and the queue waits for it — nor while another session of
// the destination is connected (it takes the queue).
bool defer_queue_after_connect_failure(bool throttling_refusal, int throttled_connects_in_a_row,
                                       int connected_sessions);

// What a session does with the reply to one transaction.
enum class ReplyStep {
  record,   // the reply concerns this recipient: decide_outcome()
  requeue,  // back to the front of the ready queue, not attempted; the session ends
};
struct ReplyReaction {
  ReplyStep step = ReplyStep::record;
  bool throttle_reply = false;  // for decide_outcome(): a throttling reply past the requeue limit
};
// `throttling`: the reply matched a throttle rule of the destination's key.
// `times_throttled`: how often this recipient was requeued for throttling before.
// `refused_before_mail`: a 421, or the connection lost at MAIL — about the connection,
// not the recipient, when it happens on a reused connection (`sent_on_connection` > 0).
ReplyReaction reply_step(bool throttling, int times_throttled, bool refused_before_mail, int sent_on_connection);

// True when the reply means the server closed a (possibly reused) connection before
// taking MAIL: a 421, or no reply with the failure at the MAIL step.
bool refused_before_mail(int code, smtp::Phase error_phase);

}  // namespace kurier::engine
