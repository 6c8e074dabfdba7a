// kurier bounce ingest (see ingest_command.h). Main thread. Bad paths are checked before
// the queue is opened, so a typo applies nothing; then the files are applied as a queue
// operation (engine/ops/operations.h: here, or by the daemon holding the queue), one
// message at a time (each apply is one synced write).
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

int bounce_ingest_command(const IngestOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  for (const auto& path : options.paths) check_mail_path(path);
  nlohmann::json paths = nlohmann::json::array();
  for (const auto& path : options.paths) paths.push_back(std::filesystem::absolute(path).string());
  return run_operation(config, {{"op", "ingest"}, {"paths", paths}, {"json", options.json}});
}

CliCommand add_bounce_ingest_command(CLI::App& bounce) {
  auto [cmd, state] = add_subcommand_with_state<ConfigState<IngestOptions>>(
      bounce, "ingest", "parse .eml files, mbox files or Maildirs and apply them to the queue");
  cmd->add_option("paths", state->options.paths, ".eml file, mbox file or Maildir")->required();
  cmd->add_flag("--json", state->options.json, "the summary as JSON");
  return config_command(cmd, state, [](auto& s) { return bounce_ingest_command(s.options); });
}

}  // namespace kurier::engine
