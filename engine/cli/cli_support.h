// Helpers every CLI command shares: a subcommand with the state its options parse into,
// the --config option and the run that reads it, opening the queue with one message for
// a queue another process holds, and running the chosen subcommand of a group. Main
// thread only.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json_fwd.hpp>

#include "engine/cli/commands.h"
#include "engine/core/config.h"
#include "queue/store.h"

namespace kurier::engine {

// Adds `--config FILE` to `command`, parsed into `config` ("" when not given).
CLI::Option* add_config_option(CLI::App& command, std::string& config, const std::string& help = "kurier.toml");
// A path option's text as a path; nullopt for "" (not given).
std::optional<std::filesystem::path> optional_path(const std::string& text);

// What a subcommand's options parse into: its command's options and the --config text.
// A command with more raw options derives from it and adds them.
template <typename Options>
struct ConfigState {
  Options options;
  std::string config;
};

// Adds subcommand `name` to `parent`, with a fresh State that CLI11 parses its options
// into and its run reads (shared, so it outlives this call).
template <typename State>
std::pair<CLI::App*, std::shared_ptr<State>> add_subcommand_with_state(CLI::App& parent, const std::string& name,
                                                                      const std::string& description) {
  return {parent.add_subcommand(name, description), std::make_shared<State>()};
}

// The run of a command whose State parsed --config: sets options.config from it, then
// returns run(state).
template <typename State, typename Run>
std::function<int()> run_with_config(std::shared_ptr<State> state, Run run) {
  return [state, run] {
    state->options.config = optional_path(state->config);
    return run(*state);
  };
}

// Adds --config FILE as the last option of `command` and returns the CliCommand that
// runs it with run_with_config.
template <typename State, typename Run>
CliCommand config_command(CLI::App* command, std::shared_ptr<State> state, Run run,
                          const std::string& config_help = "kurier.toml") {
  add_config_option(*command, state->config, config_help);
  return {command, run_with_config(std::move(state), std::move(run))};
}

// Opens the queue at [queue] path, creating the directory if needed. Throws StoreError;
// when another process holds the queue (is_lock_held()), its message says what to do
// instead: stop that process, or hand the work to the running daemon.
std::unique_ptr<queue::Store> open_queue(const Config& config);

// Opens the queue for reading: as its owner when no other process holds it, otherwise
// beside the `kurier serve` that does (queue::Access::read_only: what it had written
// when this opened). Reports read this way print the same whoever holds the queue.
std::unique_ptr<queue::Store> open_queue_for_reading(const Config& config);

// Runs a queue-changing operation (engine/ops/operations.h) on the queue, or — when
// `kurier serve` holds it — through the daemon's API, prints its output and returns its
// exit status: the same either way.
int run_operation(const Config& config, const nlohmann::json& request);

// Runs the one of `commands` that was chosen on the command line; 0 if none was.
int run_chosen(const std::vector<CliCommand>& commands);

}  // namespace kurier::engine
