// kurier serve: the daemon (engine/ops/daemon.h) until SIGTERM or SIGINT, which the
// SignalWatcher turns into a graceful stop. The main thread runs delivery. Bad
// configuration exits 2 before anything starts; a store failure exits 1.
#include <CLI/CLI.hpp>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/cli/signals.h"
#include "engine/core/config.h"
#include "engine/ops/daemon.h"

namespace kurier::engine {
namespace {

int serve_command(const std::optional<std::filesystem::path>& config_file) {
  Config config = load_config(config_file);
  log::set_level(config.log.level);
  required_verp_secret(config);
  (void)checked_http_listen(config);  // bad [http] settings show before the queue is touched

  // Before any thread starts (RocksDB's, the daemon's): every thread inherits the
  // blocked signals, so only the watcher below receives them.
  SignalWatcher::block();
  Daemon daemon(config, open_queue(config));
  auto log = kurier::log::get("serve");
  std::atomic<bool> stopping{false};
  SignalWatcher watcher([&](int signal) {
    if (stopping.exchange(true)) return;
    log->info("event=stopping signal={}", signal == SIGTERM ? "TERM" : "INT");
    daemon.stop();
  });
  return daemon.run();
}

}  // namespace

CliCommand add_serve_command(CLI::App& app) {
  auto config = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("serve", "daemon: continuous delivery, ops HTTP (/metrics, /api/status, dashboard)");
  add_config_option(*cmd, *config);
  return {cmd, [config] { return serve_command(optional_path(*config)); }};
}

}  // namespace kurier::engine
