// Helpers every CLI command shares: the --config option, opening the queue with one
// message for a queue another process holds, and running the chosen subcommand of a
// group. Main thread only.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/cli/commands.h"
#include "engine/core/config.h"
#include "queue/store.h"

namespace CLI {
class Option;
}  // namespace CLI

namespace kurier::engine {

// Adds `--config FILE` to `command`, parsed into `config` ("" when not given).
CLI::Option* add_config_option(CLI::App& command, std::string& config, const std::string& help = "kurier.toml");
// A path option's text as a path; nullopt for "" (not given).
std::optional<std::filesystem::path> optional_path(const std::string& text);

// Opens the queue at [queue] path, creating the directory if needed. Throws StoreError;
// when another process holds the queue (is_lock_held()), its message says what to do
// instead: stop that process, or hand the work to the running daemon.
std::unique_ptr<queue::Store> open_queue(const Config& config);

// Runs the one of `commands` that was chosen on the command line; 0 if none was.
int run_chosen(const std::vector<CliCommand>& commands);

}  // namespace kurier::engine
