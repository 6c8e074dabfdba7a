// Matching parsed inbound mail to recipients and recording what it means (contract
// in apply.h). Runs on the caller's thread (ingest: main; listener: its one-thread
// apply pool); blocks on the store's synced write. Store failures propagate.
#include "engine/bounces/apply.h"

#include <algorithm>

#include "common/log.h"
#include "common/text.h"
#include "engine/intake/address.h"
#include "engine/core/input_error.h"
#include "engine/events/campaign_events.h"

namespace kurier::engine {
namespace {

// "Name <b+tok@d>" or "<b+tok@d>" or "b+tok@d" -> "b+tok@d".
std::string_view bare_address(std::string_view text) {
  if (auto lt = text.rfind('<'); lt != std::string_view::npos) {
    auto gt = text.find('>', lt);
    text = text.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
  }
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string clip(std::string text, std::size_t limit) {
  if (text.size() > limit) text.resize(limit);
  return text;
}

// Feedback types (RFC 5965 and common practice) that mean "stop sending" rather than
// "this is abuse": recorded as unsubscribe.
bool is_unsubscribe(std::string_view feedback_type) {
  auto t = text::lower_ascii(feedback_type);
  return t == "opt-out" || t == "optout" || t == "unsubscribe";
}

// The report that speaks of our recipient, else the first (a relay may report the
// forwarded address rather than the one we sent to).
const bounce::RecipientReport* report_for(const bounce::Message& message, std::string_view address) {
  if (message.recipients.empty()) return nullptr;
  const auto want = text::lower_ascii(address);
  for (const auto& r : message.recipients)
    if (text::lower_ascii(bare_address(r.recipient)) == want) return &r;
  return &message.recipients.front();
}

// What one message means for the recipient it matched: the event to record and the
// address update that goes with it in the same synced batch.
struct Record {
  queue::Event event;
  std::optional<queue::AddressUpdate> update;
};

queue::AddressUpdate suppression(const std::string& address, std::string reason, std::int64_t now_ms) {
  return {queue::AddressUpdate::Kind::suppress, address, std::move(reason), 0, now_ms};
}

// A late bounce: hard suppresses at once, soft counts one more soft bounce in a row.
Record late_bounce(const bounce::Message& message, const std::string& address, std::uint32_t soft_limit,
                   std::int64_t now_ms) {
  Record r;
  r.event.kind = queue::EventKind::late_bounce;
  const auto* report = report_for(message, address);
  bounce::Diagnosis verdict = report ? report->verdict : bounce::Diagnosis{"undefined", "other", false};
  if (verdict.reason.empty()) verdict.reason = "undefined";
  if (verdict.category.empty()) verdict.category = verdict.hard ? "hard" : "other";
  r.event.category = verdict.category;
  r.event.reason = verdict.reason;
  if (report) {
    r.event.detail = report->status;
    if (!report->reply.empty()) r.event.detail += (r.event.detail.empty() ? "" : " ") + report->reply;
  }
  if (verdict.hard) {
    r.update = suppression(address, "hard-bounce " + verdict.reason, now_ms);
  } else if (verdict.category == "soft") {
    r.update = queue::AddressUpdate{queue::AddressUpdate::Kind::soft_bounce, address, verdict.reason, soft_limit,
                                    now_ms};
  }
  return r;
}

Record delay(const bounce::Message& message, const std::string& address) {
  Record r;
  r.event.kind = queue::EventKind::delay;
  const auto* report = report_for(message, address);
  r.event.category = "soft";
  r.event.reason = report && !report->verdict.reason.empty() ? report->verdict.reason : "expired";
  if (report) r.event.detail = report->status + (report->reply.empty() ? "" : " " + report->reply);
  return r;
}

// A complaint or an unsubscribe report: either way the address is suppressed.
Record feedback(const bounce::Message& message, const std::string& address, std::int64_t now_ms) {
  Record r;
  const std::string type = message.feedback_type.empty() ? "abuse" : text::lower_ascii(message.feedback_type);
  r.event.category = "other";
  r.event.detail = type;
  if (is_unsubscribe(type)) {
    r.event.kind = queue::EventKind::unsubscribe;
    r.event.reason = "unsubscribe";
  } else {
    r.event.kind = queue::EventKind::complaint;
    r.event.reason = "complaint " + type;
  }
  r.update = suppression(address, r.event.reason, now_ms);
  return r;
}

// nullopt for the kinds that record nothing (delivered, reply, unknown).
std::optional<Record> record_for(const bounce::Message& message, const std::string& address,
                                 std::uint32_t soft_limit, std::int64_t now_ms) {
  std::optional<Record> r;
  switch (message.kind) {
    case bounce::Kind::bounce:
      r = late_bounce(message, address, soft_limit, now_ms);
      break;
    case bounce::Kind::delay:
      r = delay(message, address);
      break;
    case bounce::Kind::feedback:
      r = feedback(message, address, now_ms);
      break;
    case bounce::Kind::autoreply:
      r.emplace();
      r->event.kind = queue::EventKind::autoreply;
      r->event.reason = "vacation";
      r->event.detail = message.subject;
      break;
    case bounce::Kind::delivered:
    case bounce::Kind::reply:
    case bounce::Kind::unknown:
      break;
  }
  if (r) r->event.time_ms = now_ms;
  return r;
}

}  // namespace

void ApplyStats::add(const bounce::Message& message, const ApplyResult& result) {
  ++messages;
  ++by_kind[std::string(bounce::to_string(message.kind))];
  if (result.matched) {
    ++matched;
  } else {
    ++unmatched;
  }
  if (result.event) ++by_event[queue::to_string(*result.event)];
  if (result.suppressed) ++suppressed;
}

BounceApplier::BounceApplier(queue::Store& store, const Config& config, CampaignEvents* events)
    : store_(store),
      verp_(required_verp_secret(config)),
      soft_limit_(config.bounce.soft_limit),
      events_(events) {}

std::optional<queue::Recipient> BounceApplier::match(const bounce::Message& message) {
  for (const auto& candidate : message.verp_candidates) {
    const auto address = bare_address(candidate);
    auto ids = verp_.decode_address(address);
    if (!ids) continue;
    auto recipient = store_.recipient({ids->campaign, ids->recipient});
    if (!recipient) continue;
    // The MAC covers the ids only; the domain must still be the one the campaign sent
    // with, or a token copied to another domain would match.
    auto campaign = store_.campaign(ids->campaign);
    if (!campaign || domain_of(address) != text::lower_ascii(campaign->verp_domain)) continue;
    return recipient;
  }
  return std::nullopt;
}

ApplyResult BounceApplier::apply(const bounce::Message& message, std::int64_t now_ms) {
  ApplyResult result;
  auto recipient = match(message);
  if (!recipient) return result;
  result.matched = true;
  result.recipient = recipient->key;
  result.address = recipient->address;

  auto record = record_for(message, recipient->address, soft_limit_, now_ms);
  if (!record) return result;  // matched, nothing to record
  auto& event = record->event;
  event.detail = clip(std::move(event.detail), kMaxDetailBytes);
  auto applied = store_.add_event(recipient->key, event, record->update);
  if (!applied.applied) {
    result.matched = false;  // removed in between (an aborted campaign): nothing to attach to
    return result;
  }
  if (events_) events_->later(*recipient, event);
  result.event = event.kind;
  result.reason = event.reason;
  result.suppressed = applied.suppressed;
  log::get("engine")->debug("event={} campaign={} recipient={} reason=\"{}\" suppressed={}",
                            queue::to_string(event.kind), recipient->key.campaign, recipient->key.recipient,
                            event.reason, applied.suppressed);
  return result;
}

std::optional<queue::AddressUpdate> address_update_for(const queue::Status& status, const std::string& address,
                                                       std::uint32_t soft_limit) {
  using Kind = queue::AddressUpdate::Kind;
  const auto time = status.last_attempt_ms;
  switch (status.state) {
    case queue::State::delivered:
      return queue::AddressUpdate{Kind::delivered, address, "", 0, time};
    case queue::State::bounced:
      if (status.category == "hard") return queue::AddressUpdate{Kind::suppress, address, "hard-bounce " + status.reason, 0, time};
      if (status.category == "soft") return queue::AddressUpdate{Kind::soft_bounce, address, status.reason, soft_limit, time};
      return std::nullopt;
    case queue::State::expired:
      return queue::AddressUpdate{Kind::soft_bounce, address, "expired", soft_limit, time};
    default:
      return std::nullopt;
  }
}

}  // namespace kurier::engine
