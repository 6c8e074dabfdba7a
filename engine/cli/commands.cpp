// kurier send / report / status. Main thread; errors are reported on stderr and
// turned into exit codes by the caller (InputError -> 2).
#include "engine/cli/commands.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/intake/address.h"
#include "engine/intake/campaign.h"
#include "engine/core/config.h"
#include "engine/delivery/delivery.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/intake/hygiene/hygiene_dns.h"
#include "engine/core/input_error.h"
#include "engine/cli/text_format.h"
#include "engine/ops/serve_command.h"
#include "queue/store.h"

namespace kurier::engine {
namespace {

std::atomic<int> g_signals{0};

extern "C" void on_signal(int) {
  // Second Ctrl-C: the default action ends the process at once.
  if (g_signals.fetch_add(1) >= 1) {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    std::raise(SIGINT);
  }
}

std::unique_ptr<queue::Store> open_store(const Config& config) {
  std::filesystem::create_directories(config.queue_path);
  return queue::open_rocksdb_store(config.queue_path.string());
}

struct DomainRow {
  queue::Counts counts;
  std::map<std::string, std::uint64_t> reasons;
};

std::map<std::string, DomainRow> per_domain(queue::Store& store, queue::CampaignId id) {
  std::map<std::string, DomainRow> rows;
  store.for_each_recipient(id, [&](const queue::Recipient& r) {
    auto& row = rows[domain_of(r.address)];
    switch (r.status.state) {
      case queue::State::queued: ++row.counts.queued; break;
      case queue::State::delivered: ++row.counts.delivered; break;
      case queue::State::deferred: ++row.counts.deferred; break;
      case queue::State::bounced: ++row.counts.bounced; break;
      case queue::State::expired: ++row.counts.expired; break;
      case queue::State::suppressed: ++row.counts.suppressed; break;
    }
    if (r.status.state != queue::State::delivered && !r.status.reason.empty()) ++row.reasons[r.status.reason];
    return true;
  });
  return rows;
}

void print_domain_table(std::FILE* out, const std::map<std::string, DomainRow>& rows) {
  fmt::print(out, "{:<28} {:>7} {:>9} {:>8} {:>7} {:>7} {:>10} {:>6}  {}\n", "domain", "total", "delivered",
             "deferred", "bounced", "expired", "suppressed", "queued", "reasons");
  queue::Counts total;
  for (const auto& [domain, row] : rows) {
    const auto& c = row.counts;
    std::string reasons;
    for (const auto& [reason, n] : row.reasons) reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n);
    fmt::print(out, "{:<28} {:>7} {:>9} {:>8} {:>7} {:>7} {:>10} {:>6}  {}\n", domain, c.total(), c.delivered,
               c.deferred, c.bounced, c.expired, c.suppressed, c.queued, reasons);
    total.queued += c.queued;
    total.delivered += c.delivered;
    total.deferred += c.deferred;
    total.bounced += c.bounced;
    total.expired += c.expired;
    total.suppressed += c.suppressed;
  }
  fmt::print(out, "{:<28} {:>7} {:>9} {:>8} {:>7} {:>7} {:>10} {:>6}\n", "TOTAL", total.total(), total.delivered,
             total.deferred, total.bounced, total.expired, total.suppressed, total.queued);
}

// Progress line on a TTY, refreshed a few times a second; also turns Ctrl-C into a
// graceful stop (signal handlers may only set a flag).
class Monitor {
 public:
  static constexpr std::chrono::milliseconds kRefresh{250};
  Monitor(Delivery& delivery, std::uint64_t total, std::uint64_t already_final, bool show)
      : delivery_(delivery), total_(total), already_final_(already_final), show_(show && isatty(STDERR_FILENO)) {
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
      if (g_signals > 0 && !stop_sent_) {
        stop_sent_ = true;
        std::fputs("\nkurier: stopping after the transactions in flight (Ctrl-C again to abort)\n", stderr);
        delivery_.stop();
      }
      if (show_) {
        auto p = delivery_.progress();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::uint64_t final_now = already_final_ + p.delivered + p.bounced + p.expired;
        double rate = secs > 0 ? static_cast<double>(p.messages_sent) / secs : 0;
        constexpr int kWidth = 30;
        int filled = total_ ? static_cast<int>(kWidth * std::min<double>(1.0, double(final_now) / double(total_))) : 0;
        fmt::print(stderr, "\r[{}{}] {}/{} delivered {} deferred {} bounced {}  sessions {}  {:.0f} msg/s\033[K",
                   std::string(static_cast<std::size_t>(filled), '#'), std::string(static_cast<std::size_t>(kWidth - filled), '.'),
                   final_now, total_, p.delivered, p.deferred, p.bounced, p.sessions, rate);
        std::fflush(stderr);
      }
      std::this_thread::sleep_for(kRefresh);
    }
  }
  Delivery& delivery_;
  std::uint64_t total_;
  std::uint64_t already_final_;
  bool show_;
  std::atomic<bool> done_{false};
  bool stop_sent_ = false;
  std::thread thread_;
};

}  // namespace

int send_command(const SendOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log_level);
  required_verp_secret(config);
  CampaignSpec spec = load_campaign(options.campaign);
  auto store = open_store(config);
  const auto start = std::chrono::steady_clock::now();
  const Hygiene hygiene(config.hygiene);
  const std::unique_ptr<MailHostLookup> mail_hosts = make_no_mail_host_lookup(hygiene, config);
  IntakeResult intake =
      submit_campaign(*store, spec, system_now_ms(), config.dkim_keys, IntakeHygiene{&hygiene, mail_hosts.get()});
  auto campaign = store->campaign(intake.id);
  if (intake.resumed) {
    fmt::print("kurier: campaign {} is already queued ({} recipients): continuing\n", spec.id, intake.rows);
  } else {
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
  std::fflush(stdout);

  auto before = store->counts(intake.id);
  const std::uint64_t already_final = before.total() - before.pending();
  Delivery delivery(*store, config);
  auto done = [&] {
    if (delivery.in_flight(intake.id) > 0) return false;
    auto next = store->next_due_ms(intake.id);
    if (!next) return true;
    return !options.wait && *next > system_now_ms();
  };
  g_signals = 0;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  {
    Monitor monitor(delivery, before.total(), already_final, options.progress);
    delivery.run(done);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  auto rows = per_domain(*store, intake.id);
  print_domain_table(stdout, rows);
  auto counts = store->counts(intake.id);
  auto p = delivery.progress();
  fmt::print("kurier: {} attempts in {:.1f} s ({:.0f}/s)\n", p.messages_sent, secs,
             secs > 0 ? double(p.messages_sent) / secs : 0.0);
  if (g_signals > 0) {
    fmt::print("kurier: interrupted; {} recipients still scheduled. Run the same command to continue.\n",
               counts.pending());
    return 130;
  }
  if (counts.pending() > 0) {
    auto next = store->next_due_ms(intake.id);
    fmt::print("kurier: {} recipients deferred; next attempt due at {}. Run the same command again, or `kurier "
               "serve`, to continue.\n",
               counts.pending(), next ? iso_time(*next) : "?");
  } else {
    fmt::print("kurier: campaign {} complete: every recipient is in a final state.\n", spec.id);
  }
  return 0;
}

int report_command(const ReportOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log_level);
  if (options.format != "text" && options.format != "json" && options.format != "csv")
    throw InputError("--format", 0, "", "must be text, json or csv");
  auto store = open_store(config);
  auto campaign = store->find_campaign(options.campaign);
  if (!campaign) throw InputError("campaign", 0, "", "no campaign '" + options.campaign + "' in the queue");

  if (options.format == "csv") {
    // Exactly DESIGN.md's columns (a stable format); later events are in text and JSON.
    std::cout << "recipient,state,category,reason,code,enhanced,mx,attempts,last_attempt\n";
    store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
      const auto& s = r.status;
      std::cout << csv_field(r.address) << ',' << queue::to_string(s.state) << ',' << csv_field(s.category) << ','
                << csv_field(s.reason) << ',' << (s.code ? std::to_string(s.code) : "") << ',' << s.enhanced << ','
                << csv_field(s.mx) << ',' << s.attempts << ',' << iso_time(s.last_attempt_ms) << '\n';
      return true;
    });
    return 0;
  }
  if (options.format == "json") {
    // Streamed, one recipient at a time: a million-recipient report fits in memory.
    auto counts = store->counts(campaign->id);
    nlohmann::json head = {{"campaign", campaign->name},
                           {"created", iso_time(campaign->created_ms)},
                           {"counts",
                            {{"total", counts.total()},
                             {"queued", counts.queued},
                             {"delivered", counts.delivered},
                             {"deferred", counts.deferred},
                             {"bounced", counts.bounced},
                             {"expired", counts.expired},
                             {"suppressed", counts.suppressed}}},
                           {"events",
                            {{"late_bounce", counts.late_bounce},
                             {"complaint", counts.complaint},
                             {"unsubscribe", counts.unsubscribe},
                             {"autoreply", counts.autoreply},
                             {"delay", counts.delay}}}};
    std::string h = head.dump();
    h.pop_back();
    std::cout << h << ",\"recipients\":[";
    bool first = true;
    auto event_json = [](const queue::Event& e) -> nlohmann::json {
      return {{"kind", queue::to_string(e.kind)}, {"time", iso_time(e.time_ms)}, {"category", e.category},
              {"reason", e.reason}, {"detail", e.detail}};
    };
    store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
      const auto& s = r.status;
      nlohmann::json attempts = nlohmann::json::array();
      for (const auto& a : store->attempts(r.key))
        attempts.push_back({{"time", iso_time(a.time_ms)}, {"mx", a.mx_host}, {"ip", a.mx_address}, {"tls", a.tls},
                            {"tls_detail", a.tls_detail}, {"code", a.code}, {"enhanced", a.enhanced},
                            {"text", a.text}, {"classification", a.classification}});
      nlohmann::json j = {{"recipient", r.address}, {"state", queue::to_string(s.state)}, {"category", s.category},
                          {"reason", s.reason}, {"code", s.code}, {"enhanced", s.enhanced}, {"mx", s.mx},
                          {"attempts", s.attempts}, {"last_attempt", iso_time(s.last_attempt_ms)},
                          {"next_attempt", s.state == queue::State::deferred ? iso_time(s.next_attempt_ms) : ""},
                          {"attempt_log", attempts}};
      // The latest later event (null if none) and the whole event log.
      j["event"] = s.event ? event_json(*s.event) : nlohmann::json(nullptr);
      nlohmann::json events = nlohmann::json::array();
      if (s.event)
        for (const auto& e : store->events(r.key)) events.push_back(event_json(e));
      j["events"] = std::move(events);
      std::cout << (first ? "\n" : ",\n") << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      first = false;
      return true;
    });
    std::cout << "\n]}\n";
    return 0;
  }
  auto counts = store->counts(campaign->id);
  fmt::print("campaign {} (created {}): {} recipients: {} delivered, {} deferred, {} bounced, {} expired, {} "
             "suppressed, {} queued\n\n",
             campaign->name, iso_time(campaign->created_ms), counts.total(), counts.delivered, counts.deferred,
             counts.bounced, counts.expired, counts.suppressed, counts.queued);
  print_domain_table(stdout, per_domain(*store, campaign->id));
  if (counts.late_bounce + counts.complaint + counts.unsubscribe + counts.autoreply + counts.delay > 0)
    fmt::print("later events: {} late bounces, {} complaints, {} unsubscribes, {} auto-replies, {} delays\n\n",
               counts.late_bounce, counts.complaint, counts.unsubscribe, counts.autoreply, counts.delay);
  fmt::print("\n{:<40} {:<10} {:<6} {:<16} {:>4} {:<8} {:<24} {}\n", "recipient", "state", "cat", "reason", "code",
             "status", "mx", "event");
  store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
    const auto& s = r.status;
    std::string event;
    if (s.event) event = std::string(queue::to_string(s.event->kind)) + " " + s.event->reason;
    fmt::print("{:<40} {:<10} {:<6} {:<16} {:>4} {:<8} {:<24} {}\n", r.address, queue::to_string(s.state), s.category,
               s.reason, s.code ? std::to_string(s.code) : "", s.enhanced, s.mx, event);
    return true;
  });
  return 0;
}

int status_command(const StatusOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log_level);
  // A running daemon holds the queue (RocksDB is single-process): ask it instead.
  if (auto live = fetch_live_status(config)) {
    if (options.campaign) {
      auto& campaigns = (*live)["campaigns"];
      nlohmann::json only = nlohmann::json::array();
      for (const auto& c : campaigns)
        if (c.value("campaign", "") == *options.campaign) only.push_back(c);
      if (only.empty()) throw InputError("--campaign", 0, "", "no campaign '" + *options.campaign + "' in the queue");
      campaigns = only;
    }
    std::cout << (options.json ? live->dump() + "\n" : format_live_status(*live));
    return 0;
  }
  auto store = open_store(config);
  std::vector<queue::Campaign> campaigns;
  if (options.campaign) {
    auto c = store->find_campaign(*options.campaign);
    if (!c) throw InputError("--campaign", 0, "", "no campaign '" + *options.campaign + "' in the queue");
    campaigns.push_back(*c);
  } else {
    campaigns = store->campaigns();
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : campaigns) {
    auto rows = per_domain(*store, c.id);
    if (options.json) {
      nlohmann::json domains = nlohmann::json::object();
      for (const auto& [domain, row] : rows)
        domains[domain] = {{"queued", row.counts.queued},       {"delivered", row.counts.delivered},
                           {"deferred", row.counts.deferred},   {"bounced", row.counts.bounced},
                           {"expired", row.counts.expired},     {"suppressed", row.counts.suppressed}};
      auto next = store->next_due_ms(c.id);
      out.push_back({{"campaign", c.name}, {"created", iso_time(c.created_ms)},
                     {"next_attempt", next ? iso_time(*next) : ""}, {"domains", domains}});
    } else {
      fmt::print("campaign {} (created {})\n", c.name, iso_time(c.created_ms));
      print_domain_table(stdout, rows);
      if (auto next = store->next_due_ms(c.id)) fmt::print("next attempt due at {}\n", iso_time(*next));
      fmt::print("\n");
    }
  }
  if (options.json) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace kurier::engine
