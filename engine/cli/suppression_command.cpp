// kurier suppress ... (see suppression_command.h). Main thread. Changes run as queue
// operations (engine/ops/operations.h: here, or in the daemon holding the queue); list
// and export read the queue, beside the daemon if one holds it.
#include "engine/cli/suppression_command.h"

#include <fstream>
#include <iostream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <CLI/CLI.hpp>

#include "common/log.h"
#include "common/text.h"
#include "engine/intake/address.h"
#include "engine/core/config.h"
#include "engine/intake/csv.h"
#include "engine/delivery/delivery.h"
#include "engine/core/input_error.h"
#include "engine/core/text_format.h"
#include "queue/store.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {
int suppress_command(const SuppressOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  if (options.action == "import") {
    // Read problems show before the queue is touched.
    if (!std::ifstream(options.file)) throw InputError(options.file.string(), 0, "", "cannot read file");
    return run_operation(config, {{"op", "suppress_import"},
                                  {"file", std::filesystem::absolute(options.file).string()},
                                  {"name", options.file.string()}});
  }
  if (options.action == "add")
    return run_operation(config, {{"op", "suppress_add"}, {"address", options.address}, {"reason", options.reason}});
  if (options.action == "remove") return run_operation(config, {{"op", "suppress_remove"}, {"address", options.address}});
  auto store = open_queue_for_reading(config);
  if (options.action == "export" || options.action == "list") {
    const bool csv = options.action == "export" && options.format == "csv";
    if (options.action == "export" && options.format != "csv" && options.format != "json")
      throw InputError("--format", 0, "", "must be csv or json");
    if (csv) std::cout << "address,reason,time\n";
    std::uint64_t n = 0;
    store->for_each_suppression([&](const queue::Suppression& s) {
      ++n;
      if (csv)
        std::cout << csv_field(s.address) << ',' << csv_field(s.reason) << ',' << iso_time(s.time_ms) << '\n';
      else if (options.action == "export")
        std::cout << nlohmann::json{{"address", s.address}, {"reason", s.reason}, {"time", iso_time(s.time_ms)}}.dump(
                         -1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << '\n';
      else
        fmt::print("{:<40} {:<32} {}\n", s.address, s.reason, iso_time(s.time_ms));
      return true;
    });
    if (options.action == "list") fmt::print("{} suppressed addresses\n", n);
    return 0;
  }
  throw InputError("suppress", 0, "", "unknown action '" + options.action + "'");
}

CliCommand add_suppress_command(CLI::App& app) {
  auto [suppress, state] = add_subcommand_with_state<ConfigState<SuppressOptions>>(
      app, "suppress", "the suppression list: import, export, list, add, remove");
  suppress->require_subcommand(1);
  auto* import = suppress->add_subcommand("import", "add the addresses of a CSV file (address,reason,time)");
  import->add_option("file", state->options.file, "CSV with a header row and an address (or email) column")->required();
  auto* export_ = suppress->add_subcommand("export", "print the list as CSV (address,reason,time)");
  export_->add_option("--format", state->options.format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  auto* list = suppress->add_subcommand("list", "print the list as a table");
  auto* add = suppress->add_subcommand("add", "suppress one address");
  add->add_option("address", state->options.address, "address")->required();
  add->add_option("--reason", state->options.reason, "reason (default: manual)");
  auto* remove = suppress->add_subcommand("remove", "take one address off the list");
  remove->add_option("address", state->options.address, "address")->required();
  const std::vector<CLI::App*> actions = {import, export_, list, add, remove};
  for (auto* action : actions) add_config_option(*action, state->config);
  return {suppress, run_with_config(state, [actions](auto& s) {
            for (auto* action : actions)
              if (*action) s.options.action = action->get_name();
            return suppress_command(s.options);
          })};
}

}  // namespace kurier::engine
