// kurier top: the running daemon's live per-domain table (GET /api/status), redrawn
// every second until q, Ctrl-C or --iterations. Main thread; exit 1 when the last
// refresh found no daemon, else 0.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/cli/daemon_client.h"
#include "engine/cli/signals.h"
#include "engine/cli/status_tables.h"
#include "engine/core/config.h"

namespace kurier::engine {
namespace {

// The refresh period of the table.
constexpr std::chrono::milliseconds kTopRefresh{1000};

struct TopOptions {
  std::optional<std::filesystem::path> config;
  int iterations = 0;  // refreshes before returning; 0 = until q or Ctrl-C
};

// Non-canonical, no-echo stdin for single keys (q), restored on destruction.
class RawTerminal {
 public:
  RawTerminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG kept: Ctrl-C still signals
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

// Waits up to `period` for a key or a signal; true if the key was q/Q.
bool quit_key(std::chrono::milliseconds period, bool terminal, const SignalWatcher& signals) {
  pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  if (poll(fds, terminal ? 2 : 1, static_cast<int>(period.count())) <= 0) return false;
  if (!terminal || !(fds[1].revents & POLLIN)) return false;
  char c = 0;
  return ::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q');
}

// Draws one screen; returns whether a daemon answered.
bool draw(const Config& config, bool tty) {
  auto live = fetch_live_status(config);
  std::string screen = live ? format_live_status(*live)
                            : fmt::format("kurier top: no daemon answers at {} (start `kurier serve`)\n",
                                          config.http.listen);
  if (tty) std::fputs("\033[H\033[2J", stdout);  // home + clear
  std::fputs(screen.c_str(), stdout);
  if (tty) std::fputs("\n(q to quit)", stdout);
  std::fflush(stdout);
  return live.has_value();
}

int top_command(const TopOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  const SignalWatcher signals;  // Ctrl-C ends the loop (and wakes its wait)
  int status = 0;
  RawTerminal terminal;
  const bool tty = isatty(STDOUT_FILENO);
  for (int i = 0; options.iterations == 0 || i < options.iterations; ++i) {
    status = draw(config, tty) ? 0 : 1;
    if (signals.count() > 0) break;
    if (options.iterations != 0 && i + 1 == options.iterations) break;
    if (quit_key(kTopRefresh, terminal.active(), signals) || signals.count() > 0) break;
  }
  if (tty) std::fputs("\n", stdout);
  return status;
}

}  // namespace

CliCommand add_top_command(CLI::App& app) {
  auto [cmd, state] = add_subcommand_with_state<ConfigState<TopOptions>>(
      app, "top", "the daemon's live per-domain table, refreshed every second (q quits)");
  add_config_option(*cmd, state->config);
  cmd->add_option("--iterations", state->options.iterations, "refresh this many times, then exit (0: until q/Ctrl-C)");
  return {cmd, run_with_config(state, [](auto& s) { return top_command(s.options); })};
}

}  // namespace kurier::engine
