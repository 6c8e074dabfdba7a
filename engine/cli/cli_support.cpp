// The CLI commands' shared helpers (see cli_support.h). Main thread; open_queue
// rethrows the store's StoreError, with a message of its own for a held lock.
#include "engine/cli/cli_support.h"

#include <cstdio>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/cli/daemon_client.h"
#include "engine/core/clock.h"
#include "engine/events/campaign_events.h"
#include "engine/ops/operations.h"

namespace kurier::engine {

CLI::Option* add_config_option(CLI::App& command, std::string& config, const std::string& help) {
  return command.add_option("--config", config, help);
}

std::optional<std::filesystem::path> optional_path(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return std::filesystem::path(text);
}

// RocksDB admits one process per queue; say what to do rather than only quote RocksDB.
std::unique_ptr<queue::Store> open_queue(const Config& config) {
  std::filesystem::create_directories(config.queue.path);
  try {
    return queue::open_rocksdb_store(config.queue.path.string());
  } catch (const queue::StoreError& e) {
    if (!e.is_lock_held()) throw;
    throw queue::StoreError("the queue " + config.queue.path.string() +
                                " is in use by another kurier process (is `kurier serve` running?). Stop it first, "
                                "or hand the work to it: `kurier submit` for campaigns, `kurier status` for counts, "
                                "its bounce listener for bounces ([bounce] listen = \"" + config.bounce.listen +
                                "\"). [" + e.what() + "]",
                            queue::StoreError::Kind::lock_held);
  }
}

std::unique_ptr<queue::Store> open_queue_for_reading(const Config& config) {
  try {
    return queue::open_rocksdb_store(config.queue.path.string());
  } catch (const queue::StoreError& e) {
    if (!e.is_lock_held()) throw;
  }
  // `kurier serve` holds it: read beside it.
  return queue::open_rocksdb_store(config.queue.path.string(), queue::Access::read_only);
}

int run_operation(const Config& config, const nlohmann::json& request) {
  OperationResult result;
  std::unique_ptr<queue::Store> store;
  try {
    std::filesystem::create_directories(config.queue.path);
    store = queue::open_rocksdb_store(config.queue.path.string());
  } catch (const queue::StoreError& e) {
    if (!e.is_lock_held()) throw;
  }
  if (store) {
    const std::unique_ptr<CampaignEvents> events = open_campaign_events(config, *store);  // null: [events] off
    OperationTarget target{*store, config, nullptr, system_now_ms(), events.get()};
    result = perform(request, target);
  } else {
    result = daemon_operation(config, request);
  }
  std::fputs(result.out.c_str(), stdout);
  std::fputs(result.err.c_str(), stderr);
  return result.exit;
}

int run_chosen(const std::vector<CliCommand>& commands) {
  for (const auto& command : commands)
    if (*command.app) return command.run();
  return 0;
}

}  // namespace kurier::engine
