// kurier-hygiene-bench: list hygiene over a generated file of N addresses (default
// 1,000,000; a realistic mix over ~5,000 domains with typos, disposable domains, role
// and trap addresses, syntax errors, IDNs and duplicates), streamed from disk the way
// `kurier check --file` and intake read it: a first pass notes the domains, DNS
// answers come from a prefilled cache (the resolver's job is measured in tests/dns),
// a second pass judges every address. Reports addresses/s and the peak RSS of the
// judging, and writes bench/results/hygiene.json and hygiene.md.
// Usage: kurier-hygiene-bench [N] [RESULTS_DIR]. Single-threaded; exits 1 on failure.
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/bench_util.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/core/text_format.h"

namespace {

namespace fs = std::filesystem;
using namespace kurier::engine;
using kurier::bench::cpu_seconds;
using kurier::bench::load_average;
using kurier::bench::reset_peak_rss;

constexpr std::size_t kDomains = 5000;
constexpr double kTargetPerSecond = 200000;

// DNS answered from a prefilled cache: what a resolver cache hit costs is a map lookup.
class CachedMailHosts final : public MailHostLookup {
 public:
  std::vector<MailHost> lookup(const std::vector<std::string>& domains) override {
    std::vector<MailHost> out;
    out.reserve(domains.size());
    for (const auto& d : domains) {
      auto it = zone_.find(d);
      out.push_back(it == zone_.end() ? MailHost::none : it->second);
    }
    queries_ += domains.size();
    return out;
  }
  void add(const std::string& domain, MailHost host) { zone_[domain] = host; }
  std::size_t queries() const { return queries_; }

 private:
  std::unordered_map<std::string, MailHost> zone_;
  std::size_t queries_ = 0;
};

// The generated mix: share of all addresses, in per mille.
struct Mix {
  static constexpr int kProviders = 400;   // gmail.com, gmx.de, ... (valid local parts)
  static constexpr int kTypos = 8;         // gamil.com, hotmal.com, ...
  static constexpr int kDisposable = 5;
  static constexpr int kRoles = 10;
  static constexpr int kTraps = 2;
  static constexpr int kSyntax = 5;
  static constexpr int kIdn = 5;
  static constexpr int kQuoted = 1;
  static constexpr int kDuplicates = 10;
  // The rest: company domains, 2 % of them without a mail host.
};

void write_addresses(const fs::path& file, std::uint64_t count, std::vector<std::string>& domains,
                     CachedMailHosts& dns) {
  const std::array<const char*, 10> providers = {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "gmx.de",
                                                 "web.de",    "t-online.de", "aol.com",   "icloud.com",  "gmx.net"};
  const std::array<const char*, 6> typos = {"gamil.com", "hotmal.com", "yaho.com", "gmx.dee", "t-onlne.de", "gmail.con"};
  const std::array<const char*, 4> disposable = {"mailinator.com", "yopmail.com", "guerrillamail.com", "10minutemail.com"};
  const std::array<const char*, 5> roles = {"info", "sales", "noreply", "support", "postmaster"};
  const std::array<const char*, 4> traps = {"spam", "trash", "junk", "muell"};
  const std::array<const char*, 5> broken = {"no-at-sign.example.com", "a..b@x.example", "user@", "@example.com",
                                             "us er@example.com"};
  const std::array<const char*, 12> first = {"anna", "ben", "clara", "david", "eva", "felix",
                                             "greta", "hans", "ida", "jonas", "kim", "lena"};
  const std::array<const char*, 10> last = {"mueller", "schmidt", "schneider", "fischer", "weber",
                                            "meyer",   "wagner",  "becker",    "schulz",  "hoffmann"};
  for (const char* p : providers) dns.add(p, MailHost::exists);
  for (const char* p : typos) dns.add(p, MailHost::exists);
  for (const char* p : disposable) dns.add(p, MailHost::exists);
  dns.add("xn--bcher-kva.de", MailHost::exists);
  domains.clear();
  for (std::size_t i = 0; domains.size() < kDomains - providers.size(); ++i) {
    domains.push_back(fmt::format("firma{}.example{}", i, i % 7 == 0 ? ".de" : ".com"));
    dns.add(domains.back(), i % 50 == 0 ? MailHost::none : MailHost::exists);
  }

  std::mt19937_64 rng(42);
  std::ofstream out(file, std::ios::binary);
  std::vector<std::string> recent;  // for duplicates
  for (std::uint64_t n = 0; n < count; ++n) {
    const int roll = static_cast<int>(rng() % 1000);
    const std::string person = fmt::format("{}.{}{}", first[rng() % first.size()], last[rng() % last.size()], rng() % 10000);
    std::string address;
    int bound = Mix::kProviders;
    if (roll < bound) {
      address = person + "@" + providers[rng() % providers.size()];
    } else if (roll < (bound += Mix::kTypos)) {
      address = person + "@" + typos[rng() % typos.size()];
    } else if (roll < (bound += Mix::kDisposable)) {
      address = person + "@" + disposable[rng() % disposable.size()];
    } else if (roll < (bound += Mix::kRoles)) {
      address = std::string(roles[rng() % roles.size()]) + "@" + domains[rng() % domains.size()];
    } else if (roll < (bound += Mix::kTraps)) {
      address = std::string(traps[rng() % traps.size()]) + "@" + domains[rng() % domains.size()];
    } else if (roll < (bound += Mix::kSyntax)) {
      address = broken[rng() % broken.size()];
    } else if (roll < (bound += Mix::kIdn)) {
      address = person + "@bücher.de";
    } else if (roll < (bound += Mix::kQuoted)) {
      address = "\"" + person + " x\"@" + domains[rng() % domains.size()];
    } else if (roll < (bound += Mix::kDuplicates) && !recent.empty()) {
      address = recent[rng() % recent.size()];
    } else {
      address = person + "@" + domains[rng() % domains.size()];
    }
    if (recent.size() < 1000) recent.push_back(address);
    else recent[rng() % recent.size()] = address;
    out << address << '\n';
  }
}

template <typename Fn>
void for_each_line(const fs::path& file, Fn&& fn) {
  std::ifstream in(file, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) fn(line);
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return iso_time(std::chrono::duration_cast<std::chrono::milliseconds>(now).count(), false);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::uint64_t count = argc > 1 ? std::stoull(argv[1]) : 1000000;
    const fs::path results = argc > 2 ? fs::path(argv[2]) : fs::path("bench/results");
    const fs::path work = fs::temp_directory_path() / fmt::format("kurier-hygiene-bench-{}", ::getpid());
    fs::create_directories(work);
    const fs::path file = work / "addresses.txt";

    CachedMailHosts dns;
    std::vector<std::string> domains;
    write_addresses(file, count, domains, dns);
    const auto file_bytes = fs::file_size(file);

    const Hygiene rules;  // built-in lists, default policies
    const long rss_before_kib = kurier::bench::proc_status_kib("VmRSS");
    reset_peak_rss();
    const double load = load_average();
    const double cpu_start = cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    Screening screening(rules, &dns);
    for_each_line(file, [&](const std::string& a) { screening.note(a); });
    screening.resolve_noted();
    const auto noted = std::chrono::steady_clock::now();
    std::array<std::uint64_t, 3> per_action{};
    std::array<std::uint64_t, kVerdictCount> per_verdict{};
    std::uint64_t judged = 0;
    for_each_line(file, [&](const std::string& a) {
      const Judgement j = screening.judge(a);
      ++per_action[static_cast<std::size_t>(j.action)];
      for (Verdict v : j.verdicts.list()) ++per_verdict[static_cast<std::size_t>(v)];
      ++judged;
    });
    const auto end = std::chrono::steady_clock::now();
    const double cpu_s = cpu_seconds() - cpu_start;
    const long peak_kib = kurier::bench::proc_status_kib("VmHWM");
    fs::remove_all(work);

    const double total_s = std::chrono::duration<double>(end - start).count();
    const double judge_s = std::chrono::duration<double>(end - noted).count();
    const double rate = static_cast<double>(judged) / total_s;
    // Per CPU second: what the code does, independent of what else the machine runs
    // (the shared 2-core build machine is often at a load of 10 or more).
    const double cpu_rate = static_cast<double>(judged) / cpu_s;
    nlohmann::ordered_json verdicts;
    for (std::size_t i = 0; i < kVerdictCount; ++i) verdicts[to_string(static_cast<Verdict>(i))] = per_verdict[i];
    nlohmann::ordered_json report = {
        {"benchmark", "hygiene"},
        {"date", utc_now()},
        {"addresses", judged},
        {"file_bytes", file_bytes},
        {"distinct_domains_looked_up", dns.queries()},
        {"seconds_total", total_s},
        {"seconds_domain_pass", total_s - judge_s},
        {"seconds_judge_pass", judge_s},
        {"addresses_per_second", rate},
        {"cpu_seconds", cpu_s},
        {"addresses_per_cpu_second", cpu_rate},
        {"load_average_1min_at_start", load},
        {"target_addresses_per_second", kTargetPerSecond},
        {"rss_before_kib", rss_before_kib},
        {"peak_rss_kib", peak_kib},
        {"actions", {{"accept", per_action[0]}, {"warn", per_action[1]}, {"reject", per_action[2]}}},
        {"verdicts", verdicts},
    };
    fs::create_directories(results);
    std::ofstream(results / "hygiene.json") << report.dump(2) << "\n";

    std::string md = fmt::format(
        "# List hygiene benchmark\n\n"
        "`kurier-hygiene-bench {}` ({}): {} addresses ({:.1f} MB file, {} distinct domains, DNS answered from a\n"
        "prefilled cache), streamed twice from disk: a pass noting the domains, then a pass judging every\n"
        "address with the built-in lists and default policies.\n\n"
        "| figure | value |\n|---|---|\n"
        "| addresses/s (both passes, wall clock) | {:.0f} (target {:.0f}) |\n"
        "| addresses per CPU second | {:.0f} ({:.2f} CPU s; machine load average {:.1f} at start) |\n"
        "| time: domain pass + judging | {:.2f} s + {:.2f} s |\n"
        "| RSS before / peak while judging | {:.1f} MB / {:.1f} MB |\n"
        "| actions | accept {}, warn {}, reject {} |\n",
        count, utc_now(), judged, static_cast<double>(file_bytes) / 1e6, dns.queries(), rate, kTargetPerSecond, cpu_rate,
        cpu_s, load,
        total_s - judge_s, judge_s, static_cast<double>(rss_before_kib) / 1024.0, static_cast<double>(peak_kib) / 1024.0,
        per_action[0], per_action[1], per_action[2]);
    md += "| verdicts |";
    for (std::size_t i = 0; i < kVerdictCount; ++i)
      md += fmt::format(" {} {}{}", to_string(static_cast<Verdict>(i)), per_verdict[i], i + 1 < kVerdictCount ? "," : "");
    md += " |\n\nMemory grows with the distinct domains (cache) and the distinct addresses (8-16 bytes each for\n"
          "the duplicate check), not with the file.\n";
    std::ofstream(results / "hygiene.md") << md;
    std::cout << md;
    // Judged by CPU time: the wall clock of a shared machine measures its other users.
    if (cpu_rate < kTargetPerSecond) {
      std::cerr << fmt::format("kurier-hygiene-bench: {:.0f} addresses per CPU second is below the target {:.0f}\n",
                               cpu_rate, kTargetPerSecond);
      return 1;
    }
    if (rate < kTargetPerSecond)
      std::cerr << fmt::format("kurier-hygiene-bench: note: {:.0f} addresses/s by the wall clock at load {:.1f}\n",
                               rate, load);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kurier-hygiene-bench: " << e.what() << "\n";
    return 1;
  }
}
