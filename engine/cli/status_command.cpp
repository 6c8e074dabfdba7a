// kurier status [--campaign NAME] [--json]: queued, delivered, deferred, bounced per
// campaign and domain. Asks a running daemon first (it holds the queue), else reads the
// queue. Main thread; an unknown campaign throws InputError (exit 2).
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/cli/daemon_client.h"
#include "engine/cli/status_tables.h"
#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "engine/core/text_format.h"

namespace kurier::engine {
namespace {

using nlohmann::json;

struct StatusOptions {
  std::optional<std::string> campaign;
  bool json = false;
  std::optional<std::filesystem::path> config;
};

[[noreturn]] void no_such_campaign(const std::string& name) {
  throw InputError("--campaign", 0, "", "no campaign '" + name + "' in the queue");
}

// The daemon's /api/status document, cut to one campaign when asked.
void print_live(json live, const StatusOptions& options) {
  if (options.campaign) {
    auto& campaigns = live["campaigns"];
    json only = json::array();
    for (const auto& c : campaigns)
      if (c.value("campaign", "") == *options.campaign) only.push_back(c);
    if (only.empty()) no_such_campaign(*options.campaign);
    campaigns = only;
  }
  std::cout << (options.json ? live.dump() + "\n" : format_live_status(live));
}

json campaign_json(queue::Store& store, const queue::Campaign& c, const std::map<std::string, DomainRow>& rows) {
  json domains = json::object();
  for (const auto& [domain, row] : rows)
    domains[domain] = {{"queued", row.counts.queued},       {"delivered", row.counts.delivered},
                       {"deferred", row.counts.deferred},   {"bounced", row.counts.bounced},
                       {"expired", row.counts.expired},     {"suppressed", row.counts.suppressed}};
  auto next = store.next_due_ms(c.id);
  return {{"campaign", c.name}, {"created", iso_time(c.created_ms)},
          {"next_attempt", next ? iso_time(*next) : ""}, {"domains", domains}};
}

void print_from_queue(queue::Store& store, const StatusOptions& options) {
  std::vector<queue::Campaign> campaigns;
  if (options.campaign) {
    auto c = store.find_campaign(*options.campaign);
    if (!c) no_such_campaign(*options.campaign);
    campaigns.push_back(*c);
  } else {
    campaigns = store.campaigns();
  }
  json out = json::array();
  for (const auto& c : campaigns) {
    auto rows = per_domain(store, c.id);
    if (options.json) {
      out.push_back(campaign_json(store, c, rows));
    } else {
      fmt::print("campaign {} (created {})\n", c.name, iso_time(c.created_ms));
      print_domain_table(stdout, rows);
      if (auto next = store.next_due_ms(c.id)) fmt::print("next attempt due at {}\n", iso_time(*next));
      fmt::print("\n");
    }
  }
  if (options.json) std::cout << out.dump() << "\n";
}

int status_command(const StatusOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  // A running daemon holds the queue (RocksDB is single-process): ask it instead.
  if (auto live = fetch_live_status(config)) {
    print_live(std::move(*live), options);
    return 0;
  }
  auto store = open_queue_for_reading(config);
  print_from_queue(*store, options);
  return 0;
}

}  // namespace

CliCommand add_status_command(CLI::App& app) {
  struct State : ConfigState<StatusOptions> {
    std::string campaign;
  };
  auto [cmd, state] =
      add_subcommand_with_state<State>(app, "status", "per campaign and domain: queued, delivered, deferred, bounced");
  cmd->add_option("--campaign", state->campaign, "only this campaign");
  cmd->add_flag("--json", state->options.json, "JSON output");
  return config_command(cmd, state, [](State& s) {
    if (!s.campaign.empty()) s.options.campaign = s.campaign;
    return status_command(s.options);
  });
}

}  // namespace kurier::engine
