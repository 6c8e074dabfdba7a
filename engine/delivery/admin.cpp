// Operator actions on queued recipients (engine/delivery/admin.h): selection and the
// outcome each action records. Pure but for the store scans; store failures are thrown.
#include "engine/delivery/admin.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/events/campaign_events.h"
#include "engine/intake/address.h"

namespace kurier::engine {
namespace {

constexpr std::size_t kOfflineBatch = 5000;
constexpr std::string_view kHoldPrefix = "suspend/";

bool provider_matches(const ProviderRule& rule, std::string_view domain, std::string_view last_mx) {
  for (const auto& pattern : rule.match_domains)
    if (host_glob_match(pattern, domain)) return true;
  if (last_mx.empty()) return false;
  for (const auto& pattern : rule.match_mx)
    if (host_glob_match(pattern, last_mx)) return true;
  return false;
}

// The first provider rule that claims the recipient, as the shaper routes (file order).
const ProviderRule* provider_of(const ShapingRules& rules, std::string_view domain, std::string_view last_mx) {
  if (rules.domains.count(std::string(domain))) return nullptr;  // a [domain."d"] override wins
  for (const auto& rule : rules.providers)
    if (provider_matches(rule, domain, last_mx)) return &rule;
  return nullptr;
}

}  // namespace

std::string_view to_string(AdminAction action) {
  switch (action) {
    case AdminAction::cancel: return "cancel";
    case AdminAction::purge: return "purge";
    case AdminAction::retry: return "retry";
  }
  return "";
}

bool selects(const Selector& selector, const ShapingRules& rules, const queue::Recipient& recipient) {
  if (queue::is_final(recipient.status.state)) return false;
  if (selector.campaign) return recipient.key.campaign == *selector.campaign;
  const std::string domain = ascii_domain_of(recipient.address);
  if (!selector.domain.empty()) return domain == selector.domain;
  if (selector.provider.empty()) return false;
  const ProviderRule* rule = provider_of(rules, domain, recipient.status.mx);
  return rule && rule->name == selector.provider;
}

std::optional<queue::Outcome> admin_outcome(AdminAction action, const queue::Recipient& recipient,
                                            const std::string& reason, std::int64_t now_ms) {
  const queue::Status& now = recipient.status;
  if (queue::is_final(now.state)) return std::nullopt;
  queue::Outcome o;
  o.key = recipient.key;
  o.previous_due_ms = now.next_attempt_ms;
  o.status = now;
  o.status.event.reset();
  switch (action) {
    case AdminAction::retry:
      if (now.next_attempt_ms <= now_ms) return std::nullopt;  // already due
      o.status.next_attempt_ms = now_ms;
      return o;
    case AdminAction::cancel:
      o.status.state = queue::State::cancelled;
      o.status.next_attempt_ms = 0;
      o.status.category.clear();
      o.status.reason = reason.empty() ? "cancelled" : reason;
      return o;
    case AdminAction::purge: {
      o.status.state = queue::State::bounced;
      o.status.next_attempt_ms = 0;
      o.status.category = "other";
      o.status.reason = "admin";
      queue::Attempt attempt;
      attempt.time_ms = now_ms;
      attempt.text = "purged by the operator: " + (reason.empty() ? std::string("no reason given") : reason);
      attempt.classification = "bounced other admin";
      o.attempt = std::move(attempt);
      return o;
    }
  }
  return std::nullopt;
}

AdminChanges select_changes(queue::Store& store, const Selector& selector, const ShapingRules& rules,
                            AdminAction action, const std::string& reason, std::int64_t now_ms) {
  AdminChanges out;
  auto visit = [&](const queue::Recipient& r) {
    if (!selects(selector, rules, r)) return true;
    if (auto o = admin_outcome(action, r, reason, now_ms)) {
      out.outcomes.push_back(std::move(*o));
      out.addresses.push_back(r.address);
    }
    return true;
  };
  if (selector.campaign) {
    store.for_each_recipient(*selector.campaign, visit);
    return out;
  }
  for (const auto& c : store.campaigns()) store.for_each_recipient(c.id, visit);
  return out;
}

std::size_t apply_offline(queue::Store& store, const AdminChanges& changes, CampaignEvents* events,
                          std::int64_t now_ms) {
  const auto& outcomes = changes.outcomes;
  for (std::size_t i = 0; i < outcomes.size(); i += kOfflineBatch) {
    const std::size_t n = std::min(kOfflineBatch, outcomes.size() - i);
    store.record(std::span(outcomes.data() + i, n));
    if (events) events->recorded(std::span(outcomes.data() + i, n), std::span(changes.addresses.data() + i, n), now_ms);
  }
  return outcomes.size();
}

void persist_hold(queue::Store& store, const std::string& scope, const Shaper::Hold& hold) {
  store.put_control(std::string(kHoldPrefix) + scope,
                    nlohmann::json{{"until", hold.until_ms}, {"reason", hold.reason}}.dump());
}

void erase_hold(queue::Store& store, const std::string& scope) {
  store.erase_control(std::string(kHoldPrefix) + scope);
}

std::map<std::string, Shaper::Hold> load_holds(queue::Store& store, std::int64_t now_ms) {
  std::map<std::string, Shaper::Hold> out;
  store.for_each_control(kHoldPrefix, [&](std::string_view name, std::string_view value) {
    auto j = nlohmann::json::parse(value, nullptr, false);
    if (!j.is_object()) return true;
    Shaper::Hold hold{j.value("until", std::int64_t{0}), j.value("reason", "")};
    if (hold.until_ms > now_ms) out.emplace(std::string(name.substr(kHoldPrefix.size())), std::move(hold));
    return true;
  });
  return out;
}

std::string hold_scope(const Selector& selector) {
  if (!selector.domain.empty()) return "domain:" + selector.domain;
  if (!selector.provider.empty()) return "provider:" + selector.provider;
  return "";
}

}  // namespace kurier::engine
