// Event records: names, JSON lines and the builders from queue records (contract in
// event.h). Pure; any thread; nothing here fails.
#include "engine/events/event.h"

#include <array>

#include <fmt/format.h>

#include "engine/core/text_format.h"

namespace kurier::engine {
namespace {

constexpr std::array<std::string_view, kEventTypes> kTypeNames = {
    "intake",      "suppressed", "delivered",   "deferred",  "bounced", "expired", "cancelled",
    "late_bounce", "complaint",  "unsubscribe", "autoreply", "delay",   "admin"};

EventType type_of(queue::State state) {
  switch (state) {
    case queue::State::delivered: return EventType::delivered;
    case queue::State::deferred: return EventType::deferred;
    case queue::State::bounced: return EventType::bounced;
    case queue::State::expired: return EventType::expired;
    case queue::State::cancelled: return EventType::cancelled;
    case queue::State::suppressed: return EventType::suppressed;
    case queue::State::queued: return EventType::intake;
  }
  return EventType::admin;
}

EventType type_of(queue::EventKind kind) {
  switch (kind) {
    case queue::EventKind::late_bounce: return EventType::late_bounce;
    case queue::EventKind::complaint: return EventType::complaint;
    case queue::EventKind::unsubscribe: return EventType::unsubscribe;
    case queue::EventKind::autoreply: return EventType::autoreply;
    case queue::EventKind::delay: return EventType::delay;
  }
  return EventType::admin;
}

EventRecord for_recipient(EventType type, const queue::Recipient& recipient, const CampaignFacts& campaign,
                          std::int64_t time_ms) {
  EventRecord e;
  e.type = type;
  e.time_ms = time_ms;
  e.campaign = campaign.name;
  e.recipient = recipient.address;
  e.queued_ms = campaign.queued_ms;
  e.attempt = recipient.status.attempts;
  return e;
}

// Bytes of the valid UTF-8 sequence at s[i] (2..4), 0 if it is not one (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  if (n == 0 || i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return n;
}

// A JSON string: quotes, backslashes and control characters escaped, invalid UTF-8
// replaced by U+FFFD (as nlohmann::json's `replace` handler does).
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t plain = i;  // a run that needs nothing: the common case, appended at once
    while (plain < s.size() && static_cast<unsigned char>(s[plain]) >= 0x20 &&
           static_cast<unsigned char>(s[plain]) < 0x80 && s[plain] != '"' && s[plain] != '\\')
      ++plain;
    out.append(s, i, plain - i);
    if ((i = plain) >= s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(s, i);
      n ? out.append(s, i, n) : out.append("\xEF\xBF\xBD");
      i += n ? n : 1;
      continue;
    }
    if (c == '"' || c == '\\') out.append({'\\', static_cast<char>(c)});
    else if (c == '\n') out.append("\\n");
    else if (c == '\r') out.append("\\r");
    else if (c == '\t') out.append("\\t");
    else out.append(fmt::format("\\u{:04x}", c));
    ++i;
  }
  out += '"';
}

// iso_time() of the last times seen on this thread: an intake's million events share
// two times, a delivery batch many the same queued time (strftime is a good part of a
// line's cost).
// Two entries: a line has two times (time, queued_time).
const std::string& cached_iso_time(std::int64_t ms) {
  struct Entry {
    std::int64_t ms = -1;
    std::string text;
  };
  thread_local Entry entries[2];
  thread_local std::size_t next = 0;
  for (const auto& e : entries)
    if (e.ms == ms) return e.text;
  Entry& slot = entries[next];
  next ^= 1;
  slot.ms = ms;
  slot.text = iso_time(ms);
  return slot.text;
}

}  // namespace

std::string_view to_string(EventType type) { return kTypeNames[static_cast<std::size_t>(type)]; }

std::optional<EventType> event_type_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i)
    if (kTypeNames[i] == name) return static_cast<EventType>(i);
  return std::nullopt;
}

std::string to_json_line(const EventRecord& event) {
  std::string out;
  append_json_line(out, event, event.id);
  return out;
}

void append_json_line(std::string& out, const EventRecord& e, std::uint64_t id) {
  auto text = [&out](std::string_view key, std::string_view value) {
    out.append(",\"").append(key).append("\":");
    append_json_string(out, value);
  };
  auto number = [&out](std::string_view key, auto value) {
    out.append(",\"").append(key).append("\":").append(std::to_string(value));
  };
  out.append("{\"id\":").append(std::to_string(id));
  text("type", to_string(e.type));
  text("time", cached_iso_time(e.time_ms));
  text("campaign", e.campaign);
  text("recipient", e.recipient);
  text("sender", e.sender);
  text("source", e.source);
  text("mx", e.mx);
  text("ip", e.ip);
  text("tls", e.tls);
  number("attempt", e.attempt);
  number("code", e.code);
  text("enhanced", e.enhanced);
  text("text", e.text);
  text("reason", e.reason);
  text("category", e.category);
  text("queued_time", cached_iso_time(e.queued_ms));
  number("size", e.size);
  text("node", e.node);
  out += '}';
}

CampaignFacts facts_of(const queue::Campaign& campaign) { return {campaign.name, campaign.created_ms}; }

EventRecord outcome_event(const queue::Outcome& outcome, const CampaignFacts& campaign, std::string recipient,
                          std::string sender, std::int64_t now_ms) {
  const auto& s = outcome.status;
  EventRecord e;
  e.type = type_of(s.state);
  e.time_ms = outcome.attempt && outcome.attempt->time_ms > 0 ? outcome.attempt->time_ms : now_ms;
  e.campaign = campaign.name;
  e.recipient = std::move(recipient);
  e.sender = std::move(sender);
  e.attempt = s.attempts;
  e.code = s.code;
  e.enhanced = s.enhanced;
  e.mx = s.mx;
  e.reason = s.reason;
  e.category = s.category;
  e.queued_ms = campaign.queued_ms;
  if (const auto& a = outcome.attempt) {
    e.mx = a->mx_host;
    e.ip = a->mx_address;
    e.tls = a->tls ? (a->tls_detail.empty() ? "TLS" : a->tls_detail) : "";
    e.code = a->code;
    e.enhanced = a->enhanced;
    e.text = a->text;
  }
  return e;
}

EventRecord intake_event(const queue::Recipient& recipient, const CampaignFacts& campaign, std::int64_t now_ms) {
  const bool suppressed = recipient.status.state == queue::State::suppressed;
  EventRecord e = for_recipient(suppressed ? EventType::suppressed : EventType::intake, recipient, campaign, now_ms);
  if (suppressed) {
    e.reason = recipient.status.reason;
    e.category = recipient.status.category;
  }
  return e;
}

EventRecord later_event(const queue::Event& event, const queue::Recipient& recipient, const CampaignFacts& campaign,
                        std::string sender) {
  EventRecord e = for_recipient(type_of(event.kind), recipient, campaign, event.time_ms);
  e.sender = std::move(sender);
  e.reason = event.reason;
  e.category = event.category;
  e.text = event.detail;
  return e;
}

EventRecord admin_event(const queue::Recipient& recipient, const CampaignFacts& campaign, std::string_view action,
                        std::string reason, std::int64_t now_ms) {
  EventRecord e = for_recipient(EventType::admin, recipient, campaign, now_ms);
  e.text = std::string(action);
  e.reason = std::move(reason);
  e.category = "other";
  return e;
}

}  // namespace kurier::engine
