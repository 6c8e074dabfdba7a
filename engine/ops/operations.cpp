// The queue-changing operations (see operations.h), one function per kind. The caller's
// thread; InputError becomes exit 2 with its text, store failures propagate.
#include "engine/ops/operations.h"

#include <fmt/format.h>

#include "bounce/bounce.h"
#include "engine/bounces/apply.h"
#include "engine/bounces/mail_files.h"
#include "engine/core/input_error.h"
#include "engine/core/text_format.h"
#include "engine/delivery/admin.h"
#include "engine/delivery/campaign_control.h"
#include "engine/delivery/delivery.h"
#include "engine/events/campaign_events.h"
#include "engine/intake/address.h"
#include "engine/intake/suppression_csv.h"

namespace kurier::engine {
namespace {

using nlohmann::json;

// "suspend" without "for": until `kurier unsuspend`.
constexpr std::int64_t kIndefiniteMs = std::int64_t{100} * 365 * 24 * 3600 * 1000;

std::string text_field(const json& request, const char* name) {
  auto it = request.find(name);
  if (it == request.end() || it->is_null()) return "";
  if (!it->is_string()) throw InputError("request", 0, name, "must be a string");
  return it->get<std::string>();
}

queue::Campaign campaign_named(OperationTarget& t, const std::string& name) {
  if (name.empty()) throw InputError("CAMPAIGN", 0, "", "a campaign name is required");
  auto campaign = t.store.find_campaign(name);
  if (!campaign) throw InputError("CAMPAIGN", 0, "", "no campaign named '" + name + "' in the queue");
  return *campaign;
}

// --campaign, --domain or --provider: exactly one of those `allowed`.
Selector selector_from(const json& request, OperationTarget& t, std::initializer_list<const char*> allowed) {
  Selector s;
  int given = 0;
  std::string names;
  for (const char* name : allowed) {
    names += std::string(names.empty() ? "" : ", ") + "--" + name;
    const std::string value = text_field(request, name);
    if (value.empty()) continue;
    ++given;
    if (std::string_view(name) == "campaign") s.campaign = campaign_named(t, value).id;
    if (std::string_view(name) == "domain") s.domain = ascii_domain_of("x@" + value);
    if (std::string_view(name) == "provider") s.provider = value;
  }
  if (given != 1) throw InputError("", 0, "", "give exactly one of " + names);
  if (!s.provider.empty()) {
    bool known = false;
    for (const auto& rule : t.config.shaping.providers) known = known || rule.name == s.provider;
    if (!known) throw InputError("--provider", 0, "", "no [provider." + s.provider + "] in the shaping rules");
  }
  return s;
}

std::string scope_name(const Selector& s, OperationTarget& t) {
  if (s.campaign) return "campaign " + t.store.campaign(*s.campaign)->name;
  if (!s.domain.empty()) return "domain " + s.domain;
  return "provider " + s.provider;
}

std::size_t apply_changes(OperationTarget& t, AdminChanges changes) {
  if (t.delivery) return t.delivery->apply_admin(std::move(changes));
  return apply_offline(t.store, changes, t.events, t.now_ms);
}

// An operator action on a campaign or a scope, for the event log. The running engine
// logs campaign control changes itself (with the breaker's); this is for the rest.
void log_action(OperationTarget& t, std::optional<queue::CampaignId> campaign, std::string_view action,
                const std::string& detail, bool engine_logs_it = false) {
  if (!t.events || (engine_logs_it && t.delivery)) return;
  t.events->operator_action(campaign.value_or(0), action, detail, t.now_ms);
}

OperationResult refused(ControlRefusal refusal, const std::string& campaign) {
  return {1, "", fmt::format("kurier: campaign {}: {}\n", campaign, to_string(refusal))};
}

// Runs fn with the running engine's campaign control, or one over the store alone.
template <typename Fn>
OperationResult with_control(OperationTarget& t, Fn fn) {
  if (t.delivery) return fn(t.delivery->control());
  CampaignControl control(t.store);
  return fn(control);
}

OperationResult pause_or_resume(const json& request, OperationTarget& t, bool pause) {
  const auto campaign = campaign_named(t, text_field(request, "campaign"));
  const std::string reason = text_field(request, "reason");
  return with_control(t, [&](CampaignControl& control) -> OperationResult {
    auto refusal = pause ? control.pause(campaign.id, reason, "operator", t.now_ms) : control.resume(campaign.id);
    if (refusal != ControlRefusal::none) return refused(refusal, campaign.name);
    log_action(t, campaign.id, pause ? "pause" : "resume", reason, true);
    return {0, fmt::format("kurier: campaign {} {}\n", campaign.name, pause ? "paused" : "resumed"), ""};
  });
}

OperationResult cancel(const json& request, OperationTarget& t) {
  const auto campaign = campaign_named(t, text_field(request, "campaign"));
  const std::string reason = text_field(request, "reason");
  return with_control(t, [&](CampaignControl& control) -> OperationResult {
    auto refusal = control.cancel(campaign.id, reason, "operator", t.now_ms);
    if (refusal != ControlRefusal::none) return refused(refusal, campaign.name);
    log_action(t, campaign.id, "cancel", reason, true);
    Selector s;
    s.campaign = campaign.id;
    auto changes = select_changes(t.store, s, t.config.shaping, AdminAction::cancel, reason, t.now_ms);
    const std::size_t n = apply_changes(t, std::move(changes));
    return {0, fmt::format("kurier: campaign {} cancelled: {} recipients not yet sent end cancelled\n", campaign.name, n),
            ""};
  });
}

OperationResult retry(const json& request, OperationTarget& t) {
  const Selector s = selector_from(request, t, {"campaign", "domain", "provider"});
  auto changes = select_changes(t.store, s, t.config.shaping, AdminAction::retry, "", t.now_ms);
  const std::size_t n = apply_changes(t, std::move(changes));
  log_action(t, s.campaign, "retry", scope_name(s, t));
  return {0, fmt::format("kurier: {}: {} waiting recipients due now\n", scope_name(s, t), n), ""};
}

OperationResult suspend(const json& request, OperationTarget& t) {
  const Selector s = selector_from(request, t, {"domain", "provider"});
  const std::string period = text_field(request, "for");
  std::int64_t until = t.now_ms + kIndefiniteMs;
  if (!period.empty()) {
    auto d = parse_duration(period);
    if (!d || d->count() <= 0) throw InputError("--for", 0, "", "must be a duration like 30m, 2h or 1d");
    until = t.now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
  }
  const std::string reason = text_field(request, "reason");
  if (t.delivery) t.delivery->suspend(hold_scope(s), until, reason);
  else persist_hold(t.store, hold_scope(s), {until, reason});
  const std::string when = period.empty() ? "until unsuspended" : "until " + iso_time(until, false);
  log_action(t, std::nullopt, "suspend", scope_name(s, t) + " " + when + (reason.empty() ? "" : ": " + reason));
  return {0, fmt::format("kurier: {} suspended {}\n", scope_name(s, t), when), ""};
}

OperationResult unsuspend(const json& request, OperationTarget& t) {
  const Selector s = selector_from(request, t, {"domain", "provider"});
  bool held = t.store.control("suspend/" + hold_scope(s)).has_value();
  if (t.delivery) held = t.delivery->unsuspend(hold_scope(s)) || held;
  else erase_hold(t.store, hold_scope(s));
  if (!held) return {1, "", fmt::format("kurier: {} is not suspended\n", scope_name(s, t))};
  // What the suspension handed back waits for its end: due now instead.
  const std::size_t n =
      apply_changes(t, select_changes(t.store, s, t.config.shaping, AdminAction::retry, "", t.now_ms));
  log_action(t, std::nullopt, "unsuspend", scope_name(s, t));
  return {0, fmt::format("kurier: {} unsuspended: {} waiting recipients due now\n", scope_name(s, t), n), ""};
}

OperationResult purge(const json& request, OperationTarget& t) {
  const Selector s = selector_from(request, t, {"campaign", "domain"});
  const std::string reason = text_field(request, "reason");
  if (reason.empty()) throw InputError("--reason", 0, "", "a reason is required (it is logged with every purge)");
  auto changes = select_changes(t.store, s, t.config.shaping, AdminAction::purge, reason, t.now_ms);
  const std::size_t n = apply_changes(t, std::move(changes));
  log_action(t, s.campaign, "purge", scope_name(s, t) + ": " + reason);
  return {0, fmt::format("kurier: {}: {} queued recipients purged (bounced, reason admin)\n", scope_name(s, t), n),
          ""};
}

OperationResult suppress_add(const json& request, OperationTarget& t) {
  const std::string address = text_field(request, "address");
  std::string reason = text_field(request, "reason");
  if (reason.empty()) reason = "manual";
  if (auto problem = address_problem(address))
    throw InputError("ADDRESS", 0, "", "not a valid address: \"" + address + "\": " + *problem);
  t.store.suppress({normalize_address(address), reason, t.now_ms});
  return {0, fmt::format("kurier: {} suppressed ({})\n", address, reason), ""};
}

OperationResult suppress_remove(const json& request, OperationTarget& t) {
  const std::string address = text_field(request, "address");
  const auto key = address_problem(address) ? address : normalize_address(address);
  if (!t.store.unsuppress(key)) return {2, "", fmt::format("kurier: {} is not on the suppression list\n", address)};
  return {0, fmt::format("kurier: {} removed from the suppression list\n", address), ""};
}

OperationResult suppress_import(const json& request, OperationTarget& t) {
  const std::string file = text_field(request, "name");
  auto entries = read_suppression_csv(text_field(request, "file"), file, t.now_ms);
  std::vector<queue::Suppression> fresh;
  std::uint64_t already = 0;
  for (auto& e : entries) {
    if (t.store.suppression(e.address)) ++already;
    else fresh.push_back(std::move(e));
  }
  t.store.suppress_all(fresh);
  return {0,
          fmt::format("kurier: {}: {} addresses added to the suppression list, {} already on it\n", file, fresh.size(),
                      already),
          ""};
}

std::string join_counts(const std::map<std::string, std::uint64_t>& counts) {
  std::string out;
  for (const auto& [name, n] : counts) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", name, n);
  return out.empty() ? "none" : out;
}

OperationResult ingest(const json& request, OperationTarget& t) {
  if (!request.contains("paths") || !request["paths"].is_array())
    throw InputError("request", 0, "paths", "must be a list of paths");
  std::vector<std::filesystem::path> paths;
  for (const auto& p : request["paths"]) paths.emplace_back(p.get<std::string>());
  for (const auto& path : paths) check_mail_path(path);
  BounceApplier applier(t.store, t.config, t.events);
  const auto& rules = bounce_rules_or_builtin(t.config);
  ApplyStats stats;
  for (const auto& path : paths)
    for_each_stored_message(path, [&](StoredMessage&& stored) {
      auto message = bounce::parse(stored.raw, rules);
      stats.add(message, applier.apply(message, t.now_ms));
    });
  if (request.value("json", false))
    return {0,
            json{{"messages", stats.messages}, {"matched", stats.matched}, {"unmatched", stats.unmatched},
                 {"suppressed", stats.suppressed}, {"kinds", stats.by_kind}, {"events", stats.by_event}}
                    .dump() +
                "\n",
            ""};
  std::string out = fmt::format("kurier: {} messages: {} matched, {} unmatched (no valid VERP token or unknown "
                                "recipient)\n",
                                stats.messages, stats.matched, stats.unmatched);
  out += fmt::format("  kinds:      {}\n", join_counts(stats.by_kind));
  out += fmt::format("  events:     {}\n", join_counts(stats.by_event));
  out += fmt::format("  suppressed: {} addresses added to the suppression list\n", stats.suppressed);
  return {0, out, ""};
}

using Handler = OperationResult (*)(const json&, OperationTarget&);
const std::map<std::string, Handler, std::less<>> kOperations = {
    {"pause", [](const json& r, OperationTarget& t) { return pause_or_resume(r, t, true); }},
    {"resume", [](const json& r, OperationTarget& t) { return pause_or_resume(r, t, false); }},
    {"cancel", cancel},
    {"retry", retry},
    {"suspend", suspend},
    {"unsuspend", unsuspend},
    {"purge", purge},
    {"suppress_add", suppress_add},
    {"suppress_remove", suppress_remove},
    {"suppress_import", suppress_import},
    {"ingest", ingest},
};

}  // namespace

json to_json(const OperationResult& result) {
  return {{"exit", result.exit}, {"stdout", result.out}, {"stderr", result.err}};
}

OperationResult operation_result_from(const json& j) {
  return {j.value("exit", 1), j.value("stdout", ""), j.value("stderr", "")};
}

OperationResult perform(const json& request, OperationTarget& target) {
  if (!request.is_object() || !request.contains("op") || !request["op"].is_string())
    return {2, "", "kurier: the request needs an \"op\"\n"};
  auto it = kOperations.find(request["op"].get<std::string>());
  if (it == kOperations.end()) return {2, "", "kurier: unknown operation " + request["op"].dump() + "\n"};
  try {
    return it->second(request, target);
  } catch (const InputError& e) {
    return {2, "", std::string("kurier: ") + e.what() + "\n"};
  }
}

}  // namespace kurier::engine
