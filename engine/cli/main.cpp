// The kurier command line (docs/DESIGN.md "CLI"): registers every subcommand (commands.h),
// lets CLI11 parse, runs the chosen one. Main thread. Exit 0 success, 1 runtime
// failure, 2 bad input (a parse error, or an InputError from the command).
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/core/input_error.h"

int main(int argc, char** argv) {
  // A peer closing mid-write must surface as an error code on that session, never kill
  // the process (Asio's sockets already use MSG_NOSIGNAL; this covers every other write).
  std::signal(SIGPIPE, SIG_IGN);
  using namespace kurier::engine;
  CLI::App app{"kurier: bulk mail straight to the recipients' MX hosts, every reply captured"};
  app.require_subcommand(1);
  // In the order `kurier --help` lists them.
  std::vector<CliCommand> commands = {
      add_send_command(app),  add_report_command(app), add_status_command(app), add_serve_command(app),
      add_submit_command(app), add_top_command(app),   add_check_command(app),  add_dkim_command(app),
      add_bounce_command(app), add_suppress_command(app),
  };
  for (auto& command : add_control_commands(app)) commands.push_back(std::move(command));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    return run_chosen(commands);
  } catch (const InputError& e) {
    std::cerr << "kurier: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kurier: " << e.what() << "\n";
    return 1;
  }
}
