// kurier send CAMPAIGN: queues a campaign (list hygiene, one synced intake) and
// delivers it until every recipient is final or deferred. Main thread runs delivery;
// a monitor thread draws the progress line and turns Ctrl-C into a graceful stop.
// Bad input throws InputError (exit 2), a store failure StoreError (exit 1).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/cli/signals.h"
#include "engine/cli/status_tables.h"
#include "engine/core/config.h"
#include "engine/core/text_format.h"
#include "engine/delivery/campaign_control.h"
#include "engine/delivery/delivery.h"
#include "engine/events/campaign_events.h"
#include "engine/ops/metrics.h"
#include "engine/intake/campaign.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/intake/hygiene/hygiene_dns.h"

namespace kurier::engine {
namespace {

struct SendOptions {
  std::filesystem::path campaign;
  std::optional<std::filesystem::path> config;
  bool wait = false;      // keep retrying deferred recipients until all are final
  bool progress = true;   // progress line on a TTY
};

// Progress line on a TTY, refreshed a few times a second; also turns the first Ctrl-C
// (counted by the SignalWatcher) into a graceful stop of the delivery.
class Monitor {
 public:
  static constexpr std::chrono::milliseconds kRefresh{250};
  Monitor(Delivery& delivery, const SignalWatcher& signals, std::uint64_t total, std::uint64_t already_final, bool show)
      : delivery_(delivery), signals_(signals), total_(total), already_final_(already_final),
        show_(show && isatty(STDERR_FILENO)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Monitor() {
    done_ = true;
    thread_.join();
    if (show_) std::fputs("\r\033[K", stderr);
  }

 private:
  void loop() {
    auto start = std::chrono::steady_clock::now();
    while (!done_) {
      if (signals_.count() > 0 && !stop_sent_) {
        stop_sent_ = true;
        std::fputs("\nkurier: stopping after the transactions in flight (Ctrl-C again to abort)\n", stderr);
        delivery_.stop();
      }
      if (show_) draw(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::this_thread::sleep_for(kRefresh);
    }
  }
  void draw(double secs) {
    auto p = delivery_.progress();
    std::uint64_t final_now = already_final_ + p.delivered + p.bounced + p.expired;
    double rate = secs > 0 ? static_cast<double>(p.messages_sent) / secs : 0;
    constexpr int kWidth = 30;
    int filled = total_ ? static_cast<int>(kWidth * std::min<double>(1.0, double(final_now) / double(total_))) : 0;
    fmt::print(stderr, "\r[{}{}] {}/{} delivered {} deferred {} bounced {}  sessions {}  {:.0f} msg/s\033[K",
               std::string(static_cast<std::size_t>(filled), '#'), std::string(static_cast<std::size_t>(kWidth - filled), '.'),
               final_now, total_, p.delivered, p.deferred, p.bounced, p.sessions, rate);
    std::fflush(stderr);
  }

  Delivery& delivery_;
  const SignalWatcher& signals_;
  std::uint64_t total_;
  std::uint64_t already_final_;
  bool show_;
  std::atomic<bool> done_{false};
  bool stop_sent_ = false;
  std::thread thread_;
};

void print_intake(const CampaignSpec& spec, const IntakeResult& intake, const Hygiene& hygiene) {
  if (intake.resumed) {
    fmt::print("kurier: campaign {} is already queued ({} recipients): continuing\n", spec.id, intake.rows);
    return;
  }
  std::string detail;
  for (const auto& [reason, n] : intake.suppressed_by_reason) detail += fmt::format(" {} {}", reason, n);
  fmt::print("kurier: campaign {}: {} recipients, {} queued, {} suppressed{}\n", spec.id, intake.rows, intake.queued,
             intake.suppressed, detail.empty() ? "" : " (" + detail.substr(1) + ")");
  // The intake summary of list hygiene: every verdict found, with what it did.
  std::string verdicts;
  for (const auto& [name, n] : intake.verdicts)
    verdicts += fmt::format(", {} {} ({})", name, n, to_string(hygiene.options()[*verdict_from_string(name)]));
  fmt::print("kurier: hygiene: {} rejected, {} warned{}\n", intake.suppressed, intake.warned,
             verdicts.empty() ? "" : " (" + verdicts.substr(2) + ")");
}

// The closing lines: the domain table, the rate, and what is left to do. Returns the
// exit status: 130 after Ctrl-C, else 0.
int print_outcome(queue::Store& store, const CampaignSpec& spec, queue::CampaignId id, const DeliveryProgress& p,
                  double secs, bool interrupted) {
  print_domain_table(stdout, per_domain(store, id));
  auto counts = store.counts(id);
  fmt::print("kurier: {} attempts in {:.1f} s ({:.0f}/s)\n", p.messages_sent, secs,
             secs > 0 ? double(p.messages_sent) / secs : 0.0);
  if (interrupted) {
    fmt::print("kurier: interrupted; {} recipients still scheduled. Run the same command to continue.\n",
               counts.pending());
    return 130;
  }
  if (counts.pending() > 0) {
    auto next = store.next_due_ms(id);
    fmt::print("kurier: {} recipients deferred; next attempt due at {}. Run the same command again, or `kurier "
               "serve`, to continue.\n",
               counts.pending(), next ? iso_time(*next) : "?");
  } else {
    fmt::print("kurier: campaign {} complete: every recipient is in a final state.\n", spec.id);
  }
  return 0;
}

int send_command(const SendOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  required_verp_secret(config);
  CampaignSpec spec = load_campaign(options.campaign);
  // Ctrl-C ends the process as usual, except while delivering: then the first one
  // stops gracefully (the monitor sees count()) and the second aborts.
  std::atomic<bool> delivering{false};
  SignalWatcher signals([&delivering, &signals](int signal) {
    if (!delivering) SignalWatcher::die_by(signal);
    if (signals.count() > 1) SignalWatcher::die_by(SIGINT);
  });
  auto store = open_queue(config);
  const std::unique_ptr<CampaignEvents> events = open_campaign_events(config, *store);  // null: [events] off
  const auto start = std::chrono::steady_clock::now();
  const Hygiene hygiene(config.hygiene);
  const std::unique_ptr<MailHostLookup> mail_hosts = make_no_mail_host_lookup(hygiene, config);
  IntakeResult intake =
      submit_campaign(*store, spec, system_now_ms(), config.dkim.keys, IntakeHygiene{&hygiene, mail_hosts.get()},
                      events.get());
  print_intake(spec, intake, hygiene);
  std::fflush(stdout);

  auto before = store->counts(intake.id);
  const std::uint64_t already_final = before.total() - before.pending();
  Delivery delivery(*store, config);
  delivery.set_events(events.get());
  auto done = [&] {
    if (delivery.in_flight(intake.id) > 0) return false;
    if (delivery.control().held(intake.id)) return true;  // paused or cancelled: nothing more goes out
    auto next = store->next_due_ms(intake.id);
    if (!next) return true;
    return !options.wait && *next > system_now_ms();
  };
  delivering = true;
  {
    Monitor monitor(delivery, signals, before.total(), already_final, options.progress);
    delivery.run(done);
  }
  delivering = false;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int status = print_outcome(*store, spec, intake.id, delivery.progress(), secs, signals.count() > 0);
  if (const ControlState held = delivery.control().state(intake.id); held.state != RunState::running) {
    fmt::print(stderr, "kurier: campaign {} is {} by {}: {}{}\n", spec.id, to_string(held.state), held.by,
               held.reason, held.state == RunState::paused ? " (`kurier resume` it, then run the same command)" : "");
    return 1;
  }
  return status;
}

}  // namespace

CliCommand add_send_command(CLI::App& app) {
  struct State : ConfigState<SendOptions> {
    bool no_progress = false;
  };
  auto [cmd, state] = add_subcommand_with_state<State>(
      app, "send", "queue a campaign and deliver it until every recipient is final or deferred");
  cmd->add_option("campaign", state->options.campaign, "campaign.toml")->required();
  add_config_option(*cmd, state->config, "kurier.toml (default: ./kurier.toml if present)");
  cmd->add_flag("--wait", state->options.wait, "keep retrying deferred recipients until every one is final");
  cmd->add_flag("--no-progress", state->no_progress, "no progress line on a terminal");
  return {cmd, run_with_config(state, [](State& s) {
            s.options.progress = !s.no_progress;
            return send_command(s.options);
          })};
}

}  // namespace kurier::engine
