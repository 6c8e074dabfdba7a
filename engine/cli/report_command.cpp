// kurier report CAMPAIGN [--format text|json|csv|acct]: per-recipient outcome and attempt
// log of a campaign (acct: PowerMTA's accounting CSV, engine/events/acct.h), read from the queue and streamed one recipient at a time. Main
// thread; an unknown campaign or format throws InputError (exit 2).
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/cli/status_tables.h"
#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "engine/core/text_format.h"
#include "engine/delivery/campaign_control.h"
#include "engine/core/verp.h"
#include "engine/events/acct.h"
#include "engine/ops/campaign_counts.h"

namespace kurier::engine {
namespace {

using nlohmann::json;

struct ReportOptions {
  std::string campaign;         // campaign id (name)
  std::string format = "text";  // text, json, csv, acct
  std::optional<std::filesystem::path> config;
};

void report_csv(queue::Store& store, const queue::Campaign& campaign) {
  // Exactly docs/DESIGN.md's columns (a stable format); later events are in text and JSON.
  std::cout << "recipient,state,category,reason,code,enhanced,mx,attempts,last_attempt\n";
  store.for_each_recipient(campaign.id, [&](const queue::Recipient& r) {
    const auto& s = r.status;
    std::cout << csv_field(r.address) << ',' << queue::to_string(s.state) << ',' << csv_field(s.category) << ','
              << csv_field(s.reason) << ',' << (s.code ? std::to_string(s.code) : "") << ',' << s.enhanced << ','
              << csv_field(s.mx) << ',' << s.attempts << ',' << iso_time(s.last_attempt_ms) << '\n';
    return true;
  });
}

// One row per attempt and later event; senders only when [verp] secret is set.
void report_acct(queue::Store& store, const queue::Campaign& campaign, const Config& config) {
  std::optional<Verp> verp;
  if (!config.verp.secret.empty()) verp.emplace(config.verp.secret);
  const AcctCampaign facts{campaign.name, campaign.created_ms};
  std::cout << acct_header() << '\n';
  store.for_each_recipient(campaign.id, [&](const queue::Recipient& r) {
    const std::string sender =
        verp ? verp->address({r.key.campaign, r.key.recipient}, campaign.verp_domain) : std::string();
    const auto events = r.status.event ? store.events(r.key) : std::vector<queue::Event>{};
    for (const auto& line : acct_rows(r, store.attempts(r.key), events, facts, sender)) std::cout << line << '\n';
    return true;
  });
}

json event_json(const queue::Event& e) {
  return {{"kind", queue::to_string(e.kind)}, {"time", iso_time(e.time_ms)}, {"category", e.category},
          {"reason", e.reason}, {"detail", e.detail}};
}

json campaign_head_json(const queue::Campaign& campaign, const queue::Counts& counts) {
  return {{"campaign", campaign.name},
          {"created", iso_time(campaign.created_ms)},
          {"counts", counts_json(counts)},
          {"events",
           {{"late_bounce", counts.late_bounce},
            {"complaint", counts.complaint},
            {"unsubscribe", counts.unsubscribe},
            {"autoreply", counts.autoreply},
            {"delay", counts.delay}}}};
}

json recipient_json(queue::Store& store, const queue::Recipient& r) {
  const auto& s = r.status;
  json attempts = json::array();
  for (const auto& a : store.attempts(r.key))
    attempts.push_back({{"time", iso_time(a.time_ms)}, {"mx", a.mx_host}, {"ip", a.mx_address}, {"tls", a.tls},
                        {"tls_detail", a.tls_detail}, {"code", a.code}, {"enhanced", a.enhanced},
                        {"text", a.text}, {"classification", a.classification}});
  json j = {{"recipient", r.address}, {"state", queue::to_string(s.state)}, {"category", s.category},
            {"reason", s.reason}, {"code", s.code}, {"enhanced", s.enhanced}, {"mx", s.mx},
            {"attempts", s.attempts}, {"last_attempt", iso_time(s.last_attempt_ms)},
            {"next_attempt", s.state == queue::State::deferred ? iso_time(s.next_attempt_ms) : ""},
            {"attempt_log", attempts}};
  // The latest later event (null if none) and the whole event log.
  j["event"] = s.event ? event_json(*s.event) : json(nullptr);
  json events = json::array();
  if (s.event)
    for (const auto& e : store.events(r.key)) events.push_back(event_json(e));
  j["events"] = std::move(events);
  return j;
}

void report_json(queue::Store& store, const queue::Campaign& campaign) {
  // Streamed, one recipient at a time: a million-recipient report fits in memory.
  std::string h = campaign_head_json(campaign, store.counts(campaign.id)).dump();
  h.pop_back();
  std::cout << h << ",\"recipients\":[";
  bool first = true;
  store.for_each_recipient(campaign.id, [&](const queue::Recipient& r) {
    std::cout << (first ? "\n" : ",\n")
              << recipient_json(store, r).dump(-1, ' ', false, json::error_handler_t::replace);
    first = false;
    return true;
  });
  std::cout << "\n]}\n";
}

void report_text(queue::Store& store, const queue::Campaign& campaign) {
  auto counts = store.counts(campaign.id);
  fmt::print("campaign {} (created {}): {} recipients: {} delivered, {} deferred, {} bounced, {} expired, {} "
             "suppressed, {} queued",
             campaign.name, iso_time(campaign.created_ms), counts.total(), counts.delivered, counts.deferred,
             counts.bounced, counts.expired, counts.suppressed, counts.queued);
  if (counts.cancelled > 0) fmt::print(", {} cancelled", counts.cancelled);
  fmt::print("\n");
  if (auto held = stored_control(store, campaign.id))
    fmt::print("{} by {} since {}: {}\n", to_string(held->state), held->by, iso_time(held->since_ms, false),
                 held->reason);
  fmt::print("\n");
  print_domain_table(stdout, per_domain(store, campaign.id));
  if (counts.late_bounce + counts.complaint + counts.unsubscribe + counts.autoreply + counts.delay > 0)
    fmt::print("later events: {} late bounces, {} complaints, {} unsubscribes, {} auto-replies, {} delays\n\n",
               counts.late_bounce, counts.complaint, counts.unsubscribe, counts.autoreply, counts.delay);
  fmt::print("\n{:<40} {:<10} {:<6} {:<16} {:>4} {:<8} {:<24} {}\n", "recipient", "state", "cat", "reason", "code",
             "status", "mx", "event");
  store.for_each_recipient(campaign.id, [&](const queue::Recipient& r) {
    const auto& s = r.status;
    std::string event;
    if (s.event) event = std::string(queue::to_string(s.event->kind)) + " " + s.event->reason;
    fmt::print("{:<40} {:<10} {:<6} {:<16} {:>4} {:<8} {:<24} {}\n", r.address, queue::to_string(s.state), s.category,
               s.reason, s.code ? std::to_string(s.code) : "", s.enhanced, s.mx, event);
    return true;
  });
}

int report_command(const ReportOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  if (options.format != "text" && options.format != "json" && options.format != "csv" && options.format != "acct")
    throw InputError("--format", 0, "", "must be text, json, csv or acct");
  auto store = open_queue_for_reading(config);
  auto campaign = store->find_campaign(options.campaign);
  if (!campaign) throw InputError("campaign", 0, "", "no campaign '" + options.campaign + "' in the queue");
  if (options.format == "csv")
    report_csv(*store, *campaign);
  else if (options.format == "acct")
    report_acct(*store, *campaign, config);
  else if (options.format == "json")
    report_json(*store, *campaign);
  else
    report_text(*store, *campaign);
  return 0;
}

}  // namespace

CliCommand add_report_command(CLI::App& app) {
  auto [cmd, state] = add_subcommand_with_state<ConfigState<ReportOptions>>(
      app, "report", "per-recipient outcome and attempt log of a campaign");
  cmd->add_option("campaign", state->options.campaign, "campaign id")->required();
  cmd->add_option("--format", state->options.format, "text, json, csv or acct")
      ->check(CLI::IsMember({"text", "json", "csv", "acct"}));
  return config_command(cmd, state, [](auto& s) { return report_command(s.options); });
}

}  // namespace kurier::engine
