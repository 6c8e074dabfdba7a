// Event records: names, JSON lines and the builders from queue records (contract in
// event.h). Pure; any thread; nothing here fails.
#include "engine/events/event.h"

#include <array>

#include <nlohmann/json.hpp>

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

}  // namespace

std::string_view to_string(EventType type) { return kTypeNames[static_cast<std::size_t>(type)]; }

std::optional<EventType> event_type_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i)
    if (kTypeNames[i] == name) return static_cast<EventType>(i);
  return std::nullopt;
}

nlohmann::ordered_json to_json(const EventRecord& e) {
  return {{"id", e.id},           {"type", to_string(e.type)},   {"time", iso_time(e.time_ms)},
          {"campaign", e.campaign}, {"recipient", e.recipient},  {"sender", e.sender},
          {"source", e.source},   {"mx", e.mx},                  {"ip", e.ip},
          {"tls", e.tls},         {"attempt", e.attempt},        {"code", e.code},
          {"enhanced", e.enhanced}, {"text", e.text},            {"reason", e.reason},
          {"category", e.category}, {"queued_time", iso_time(e.queued_ms)}, {"size", e.size},
          {"node", e.node}};
}

std::string to_json_line(const EventRecord& event) {
  // Reply texts come from the network: invalid UTF-8 is replaced, never a throw.
  return to_json(event).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
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
