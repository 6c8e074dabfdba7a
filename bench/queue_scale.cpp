// kurier-queue-scale: queues a generated campaign of N recipients (default 1,000,000)
// through the engine's intake (CSV parsing, hygiene, duplicate check) into a RocksDB
// queue on disk, and reports the intake rate, the peak RSS of intake and the queue's
// bytes per recipient on disk. Nothing is delivered. --events also writes the event
// log's intake events (engine/events/), timed with the intake. Single-threaded; exits 1 on any
// failure, with the reason on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/bench_util.h"
#include "engine/events/campaign_events.h"
#include "engine/events/event_log.h"
#include "engine/intake/campaign.h"
#include "queue/store.h"

namespace {

namespace fs = std::filesystem;
using kurier::bench::cpu_seconds;
using kurier::bench::load_average;
using kurier::bench::reset_peak_rss;

constexpr int kDomains = 50;

std::uint64_t directory_bytes(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) total += entry.file_size();
  return total;
}

// Typical list rows: a ~30-byte address over kDomains domains and five short fields.
void write_campaign(const fs::path& dir, std::uint64_t recipients, const fs::path& template_file) {
  fs::copy_file(template_file, dir / "newsletter.eml", fs::copy_options::overwrite_existing);
  std::ofstream campaign(dir / "campaign.toml");
  campaign << "id = \"scale-" << recipients << "\"\n"
           << "from = \"Kurier Bench <news@sender.bench.test>\"\n"
           << "template = \"newsletter.eml\"\nrecipients = \"recipients.csv\"\n"
           << "[verp]\ndomain = \"bounce.sender.bench.test\"\n";
  std::ofstream csv(dir / "recipients.csv", std::ios::binary);
  csv << "email,first,last,city,code,since\n";
  static const char* kFirst[] = {"Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo"};
  static const char* kCity[] = {"Hamburg", "Berlin", "Lyon", "Porto", "Gent", "Graz", "Turku"};
  std::string row;
  for (std::uint64_t i = 1; i <= recipients; ++i) {
    row = fmt::format("{}.user{}@d{}.bench.test,{},Schmidt,{},S{:07X},{}\n", kFirst[i % 8], i, i % kDomains,
                      kFirst[i % 8], kCity[i % 7], i, 2010 + i % 15);
    csv << row;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t recipients = 1'000'000;
  fs::path work;
  fs::path out;
  fs::path template_file = KURIER_BENCH_TEMPLATE;
  bool events = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--recipients") recipients = std::stoull(value());
    else if (arg == "--dir") work = value();
    else if (arg == "--out") out = value();
    else if (arg == "--template") template_file = value();
    else if (arg == "--events") events = true;
    else {
      std::cerr << "usage: kurier-queue-scale [--recipients N] [--dir WORKDIR] [--out RESULT.json] [--template FILE] [--events]\n";
      return 2;
    }
  }
  const bool own_dir = work.empty();
  if (own_dir) work = fs::temp_directory_path() / fmt::format("kurier-queue-scale-{}", ::getpid());
  try {
    fs::remove_all(work);
    fs::create_directories(work);
    write_campaign(work, recipients, template_file);
    const auto csv_bytes = fs::file_size(work / "recipients.csv");
    const auto template_bytes = fs::file_size(work / "newsletter.eml");

    const auto spec = kurier::engine::load_campaign(work / "campaign.toml");
    reset_peak_rss();
    const long rss_before = kurier::bench::proc_status_kib("VmHWM");
    const double load_before = load_average();
    const double cpu_start = cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t queued = 0;
    std::uint64_t disk_live = 0;
    double seconds = 0;
    double cpu = 0;
    long peak = 0;
    {
      // Timed: opening the queue and submit_campaign() up to its synced commit, the
      // point where `kurier send` starts delivering. Closing the store (the memtable
      // flush) is not part of intake.
      auto store = kurier::queue::open_rocksdb_store((work / "queue").string());
      std::unique_ptr<kurier::engine::CampaignEvents> log;
      if (events)
        log = std::make_unique<kurier::engine::CampaignEvents>(
            *store, std::make_unique<kurier::engine::EventLog>(kurier::engine::EventLogOptions{work / "events.jsonl"}),
            "bench-secret");
      auto intake = kurier::engine::submit_campaign(*store, spec, 1'800'000'000'000, {}, {}, log.get());
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      cpu = cpu_seconds() - cpu_start;
      queued = intake.queued;
      disk_live = store->disk_bytes();
    }
    peak = kurier::bench::proc_status_kib("VmHWM");  // includes the close: the flush must fit the budget too
    const auto disk_closed = directory_bytes(work / "queue");
    // Reopened: the WAL replayed into compressed SST files, the resting footprint.
    std::uint64_t disk_reopened = 0;
    std::uint64_t counted = 0;
    {
      auto store = kurier::queue::open_rocksdb_store((work / "queue").string());
      auto campaign = store->find_campaign(spec.id);
      if (!campaign) throw std::runtime_error("the campaign is not in the queue after intake");
      counted = store->counts(campaign->id).queued;
    }
    disk_reopened = directory_bytes(work / "queue");
    if (counted != recipients || queued != recipients)
      throw std::runtime_error(fmt::format("{} recipients generated, {} queued, {} counted", recipients, queued, counted));

    const double n = static_cast<double>(recipients);
    const double per_recipient = (static_cast<double>(disk_reopened) - static_cast<double>(template_bytes)) / n;
    nlohmann::json result = {
        {"recipients", recipients},
        {"events", events},
        {"csv_bytes", csv_bytes},
        {"intake_seconds", seconds},
        {"intake_cpu_seconds", cpu},
        {"intake_recipients_per_second", n / seconds},
        // The machine is shared: the rate per CPU-second of the (single) intake thread
        // says what intake costs regardless of the load around it.
        {"intake_recipients_per_cpu_second", n / cpu},
        {"load_average_at_start", load_before},
        {"rss_before_intake_mb", static_cast<double>(rss_before) / 1024.0},
        {"peak_rss_mb", static_cast<double>(peak) / 1024.0},
        {"disk_bytes_open", disk_live},
        {"disk_bytes_closed", disk_closed},
        {"disk_bytes_reopened", disk_reopened},
        {"template_bytes", template_bytes},
        {"bytes_per_recipient", per_recipient},
        {"targets",
         {{"peak_rss_mb_below", 256}, {"bytes_per_recipient_below", 200}, {"intake_recipients_per_second_at_least", 200000}}},
        {"met",
         {{"peak_rss", static_cast<double>(peak) / 1024.0 < 256},
          {"bytes_per_recipient", per_recipient < 200},
          {"intake_rate", n / seconds >= 200000}}}};
    std::cout << result.dump(2) << "\n";
    if (!out.empty()) {
      std::ofstream file(out);
      file << result.dump(2) << "\n";
    }
    if (own_dir) fs::remove_all(work);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kurier-queue-scale: " << e.what() << "\n";
    if (own_dir) fs::remove_all(work);
    return 1;
  }
}
