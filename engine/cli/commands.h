// The kurier subcommands as main() registers them: each add_*_command adds its CLI11
// options to `app` (the top-level app, or its group's app) and returns what main runs
// when it was chosen. Prototypes grouped under the file that defines them: this header
// is the map of engine/cli. Main thread only; every run returns the exit status (0
// success, 1 runtime failure, 2 bad input) or throws (InputError: 2, otherwise 1).
#pragma once

#include <functional>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace kurier::engine {

struct CliCommand {
  CLI::App* app = nullptr;   // the subcommand; true (operator bool) once chosen
  std::function<int()> run;  // runs it, with the options CLI11 parsed into its state
};

// send_command.cpp: queue a campaign and deliver it.
CliCommand add_send_command(CLI::App& app);
// report_command.cpp: per-recipient outcomes of a campaign (text, JSON, CSV).
CliCommand add_report_command(CLI::App& app);
// status_command.cpp: counts per campaign and domain, from the daemon or the queue.
CliCommand add_status_command(CLI::App& app);
// serve_command.cpp: the daemon (engine/ops/daemon.h) until SIGTERM/SIGINT.
CliCommand add_serve_command(CLI::App& app);
// submit_command.cpp: hand a campaign to the running daemon.
CliCommand add_submit_command(CLI::App& app);
// top_command.cpp: the daemon's live table, refreshed every second.
CliCommand add_top_command(CLI::App& app);
// check_command.cpp: list-hygiene verdicts.
CliCommand add_check_command(CLI::App& app);
// dkim_command.cpp: the `dkim` group, keygen and check.
CliCommand add_dkim_command(CLI::App& app);
// bounce_command.cpp: the `bounce` group and its classify; ingest_command.cpp: ingest.
CliCommand add_bounce_command(CLI::App& app);
CliCommand add_bounce_ingest_command(CLI::App& bounce);
// suppression_command.cpp: the `suppress` group (import, export, list, add, remove).
CliCommand add_suppress_command(CLI::App& app);
// control_command.cpp: pause, resume, cancel, retry, suspend, unsuspend, purge.
std::vector<CliCommand> add_control_commands(CLI::App& app);

}  // namespace kurier::engine
