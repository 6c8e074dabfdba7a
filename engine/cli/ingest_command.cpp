// kurier bounce ingest (see ingest_command.h). Main thread: reads, parses and applies
// one message at a time (each apply is one synced write). Bad paths are checked before
// the queue is opened, so a typo applies nothing.
#include "engine/cli/ingest_command.h"

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <CLI/CLI.hpp>

#include "bounce/bounce.h"
#include "common/log.h"
#include "engine/bounces/apply.h"
#include "engine/core/config.h"
#include "engine/delivery/delivery.h"
#include "engine/events/campaign_events.h"
#include "engine/bounces/mail_files.h"
#include "queue/store.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {

namespace {

std::string join_counts(const std::map<std::string, std::uint64_t>& counts) {
  std::string out;
  for (const auto& [name, n] : counts) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", name, n);
  return out.empty() ? "none" : out;
}

}  // namespace

int bounce_ingest_command(const IngestOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  for (const auto& path : options.paths) check_mail_path(path);
  auto store = open_queue(config);
  const std::unique_ptr<CampaignEvents> events = open_campaign_events(config, *store);  // null: [events] off
  BounceApplier applier(*store, config, events.get());
  const auto& rules = bounce_rules_or_builtin(config);  // [bounce] rules, else built-in
  ApplyStats stats;
  for (const auto& path : options.paths) {
    for_each_stored_message(path, [&](StoredMessage&& stored) {
      auto message = bounce::parse(stored.raw, rules);
      auto result = applier.apply(message, system_now_ms());
      stats.add(message, result);
      log::get("engine")->debug("event=ingest file=\"{}\" kind={} matched={} suppressed={}", stored.origin,
                                bounce::to_string(message.kind), result.matched, result.suppressed);
    });
  }
  if (options.json) {
    nlohmann::json j = {{"messages", stats.messages}, {"matched", stats.matched}, {"unmatched", stats.unmatched},
                        {"suppressed", stats.suppressed}, {"kinds", stats.by_kind}, {"events", stats.by_event}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  fmt::print("kurier: {} messages: {} matched, {} unmatched (no valid VERP token or unknown recipient)\n",
             stats.messages, stats.matched, stats.unmatched);
  fmt::print("  kinds:      {}\n", join_counts(stats.by_kind));
  fmt::print("  events:     {}\n", join_counts(stats.by_event));
  fmt::print("  suppressed: {} addresses added to the suppression list\n", stats.suppressed);
  return 0;
}

CliCommand add_bounce_ingest_command(CLI::App& bounce) {
  auto [cmd, state] = add_subcommand_with_state<ConfigState<IngestOptions>>(
      bounce, "ingest", "parse .eml files, mbox files or Maildirs and apply them to the queue");
  cmd->add_option("paths", state->options.paths, ".eml file, mbox file or Maildir")->required();
  cmd->add_flag("--json", state->options.json, "the summary as JSON");
  return config_command(cmd, state, [](auto& s) { return bounce_ingest_command(s.options); });
}

}  // namespace kurier::engine
