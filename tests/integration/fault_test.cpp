// Faulty MX peers (issue 8, part 2): the real `kurier send` against one kurier-sink
// that misbehaves differently on each of its listen addresses (script rules with
// `fault` and `address`), one domain per fault, resolved by a real dnsmasq. kurier
// must neither crash nor hang (bounded wall time), keep its memory bounded (VmHWM),
// and leave every recipient in the state the fault calls for: deferred where no
// reply decided, delivered where the 250 arrived, bounced where a 5xx arrived.
// The test prints one table row per fault.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ChildProcess;

constexpr int kPerFault = 6;  // recipients per fault: more than one session's worth
// Every SMTP timeout in kurier.toml: each "hang" fault costs about this per attempt.
constexpr int kTimeoutMs = 800;
// kurier must be done well within this, whatever the peers do.
constexpr auto kWallLimit = 90s;
// Peak resident memory of `kurier send`. A normal run needs a few tens of MB; a
// client that buffered a 1 MB reply line or an endless reply per session would not
// stay under this. Sanitizer builds carry their shadow memory on top.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kMaxHwmKb = 1024 * 1024;
#else
constexpr long kMaxHwmKb = 256 * 1024;
#endif

struct Fault {
  std::string name;      // the table row
  std::string rule;      // sink rule body (stage, fault, reply...); "" = well-behaved peer
  std::string expected;  // final state of every recipient
  std::string reason;    // expected reason ("" = any)
  bool tls_required = false;  // delivered in the second run, with [smtp] tls = "required"
};

const std::vector<Fault>& faults() {
  static const std::vector<Fault> list = {
      {"well-behaved peer (control)", "", "delivered", ""},
      {"drop before greeting", "stage = \"connect\"\nfault = \"drop\"", "deferred", "networkerror"},
      {"greeting never comes", "stage = \"connect\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"garbage greeting (HTTP)", "stage = \"connect\"\nfault = \"garbage\"", "deferred", "networkerror"},
      {"1 MB greeting line", "stage = \"connect\"\nreply = \"220 x\"\nfault = \"long_line\"", "deferred",
       "networkerror"},
      {"EHLO reply never comes", "stage = \"ehlo\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"endless multi-line EHLO reply", "stage = \"ehlo\"\nreply = \"250 x\"\nfault = \"endless\"", "deferred",
       "networkerror"},
      {"drop after MAIL", "stage = \"mail\"\nfault = \"drop\"", "deferred", "networkerror"},
      {"MAIL reply never comes", "stage = \"mail\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"garbage RCPT reply", "stage = \"rcpt\"\nfault = \"garbage\"", "deferred", "networkerror"},
      {"1 MB RCPT reply line (550)", "stage = \"rcpt\"\nreply = \"550 5.1.1 x\"\nfault = \"long_line\"",
       "deferred", "networkerror"},
      {"endless multi-line RCPT reply (550)", "stage = \"rcpt\"\nreply = \"550 x\"\nfault = \"endless\"",
       "deferred", "networkerror"},
      {"RCPT reply never comes", "stage = \"rcpt\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"550 to RCPT, then reset", "stage = \"rcpt\"\nreply = \"550 5.1.1 <{rcpt}>: User unknown\"\nfault = \"reset\"",
       "bounced", "userunknown"},
      {"DATA reply never comes", "stage = \"data\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"drop in the middle of DATA", "stage = \"content\"\nfault = \"drop\"", "deferred", "networkerror"},
      {"peer stops reading content", "stage = \"content\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"drop before the final 250", "stage = \"message\"\nfault = \"drop\"", "deferred", "networkerror"},
      {"final reply never comes", "stage = \"message\"\nfault = \"hang\"", "deferred", "networkerror"},
      {"reset right after the final 250", "stage = \"message\"\nreply = \"250 2.0.0 Ok\"\nfault = \"reset\"",
       "delivered", ""},
      {"TLS handshake fails (opportunistic)", "stage = \"starttls\"\nfault = \"bad_tls\"", "delivered", ""},
      {"TLS handshake fails (tls = required)", "stage = \"starttls\"\nfault = \"bad_tls\"", "deferred", "", true},
  };
  return list;
}

std::string ip_of(std::size_t i) { return "127.0.6." + std::to_string(i + 1); }
std::string domain_of(std::size_t i) { return "f" + std::to_string(i + 1) + ".test"; }

// Peak resident set (VmHWM, kB) of a running process; -1 once it is gone.
long vm_hwm_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmHWM:")) return std::stol(line.substr(6));
  return -1;
}

struct SendRun {
  int exit_status = -1;
  std::chrono::milliseconds wall{0};
  long hwm_kb = -1;
};

// Runs `kurier send` as a child, sampling its VmHWM until it exits.
SendRun send_campaign(const fs::path& root, const std::string& campaign, const std::string& config) {
  SendRun run;
  const auto start = std::chrono::steady_clock::now();
  ChildProcess kurier({test::binary("kurier").string(), "send", (root / campaign).string(), "--config",
                       (root / config).string(), "--no-progress"},
                      root / (campaign + ".log"));
  const pid_t pid = kurier.pid();
  while (kurier.running()) {
    if (long hwm = vm_hwm_kb(pid); hwm > run.hwm_kb) run.hwm_kb = hwm;
    if (std::chrono::steady_clock::now() - start > kWallLimit) break;
    std::this_thread::sleep_for(20ms);
  }
  run.wall = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  run.exit_status = kurier.stop(SIGKILL, 1s);  // a no-op unless it overran kWallLimit
  return run;
}

struct ReportRow {
  std::string state, reason, code, attempts;
};

std::map<std::string, ReportRow> report(const fs::path& root, const std::string& campaign) {
  auto r = test::report_csv(root / "kurier.toml", campaign);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, ReportRow> rows;
  for (const auto& cols : test::split_csv(r.out).fields)
    if (cols.size() >= 8) rows[cols[0]] = {cols[1], cols[3], cols[4], cols[7]};
  return rows;
}

TEST(FaultyPeers, EveryRecipientEndsDeferredOrBouncedAsTheFaultDictatesWithoutHangOrMemoryGrowth) {
  if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
  test::TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t port = test::free_tcp_port();
  const auto& list = faults();

  std::vector<std::string> zone = {"local=/test/"};
  std::string script;
  std::vector<std::string> sink_args = {test::binary("kurier-sink").string(), "--tls", "--store",
                                        (root / "mail").string(), "--stats", (root / "stats.json").string()};
  for (std::size_t i = 0; i < list.size(); ++i) {
    zone.push_back("mx-host=" + domain_of(i) + ",mx." + domain_of(i) + ",10");
    zone.push_back("host-record=mx." + domain_of(i) + "," + ip_of(i));
    if (!list[i].rule.empty()) script += "[[rule]]\naddress = \"" + ip_of(i) + "\"\n" + list[i].rule + "\n";
    sink_args.insert(sink_args.end(), {"--listen", ip_of(i) + ":" + std::to_string(port)});
  }
  test::Dnsmasq dns(zone);
  test::write_file(root / "sink.toml", script);
  sink_args.insert(sink_args.end(), {"--script", (root / "sink.toml").string()});
  ChildProcess sink(sink_args, root / "sink.log");
  ASSERT_TRUE(test::wait_for_tcp(ip_of(0), port, 10s)) << test::read_file(root / "sink.log");

  // Two campaigns: everything with opportunistic TLS, and the TLS-required row alone.
  std::ostringstream csv_main, csv_required;
  csv_main << "email,n\n";
  csv_required << "email,n\n";
  std::map<std::string, std::size_t> fault_of;  // address -> index in list
  for (std::size_t i = 0; i < list.size(); ++i) {
    for (int k = 0; k < kPerFault; ++k) {
      const std::string address = "user" + std::to_string(k) + "@" + domain_of(i);
      fault_of[address] = i;
      (list[i].tls_required ? csv_required : csv_main) << address << "," << k << "\n";
    }
  }
  test::write_file(root / "main.csv", csv_main.str());
  test::write_file(root / "required.csv", csv_required.str());
  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: fault {{n}}\n\n" +
                                              std::string(200, 'b') + "\nHello {{n}}\n");
  for (const auto& [name, csv] : {std::pair{"faults", "main.csv"}, std::pair{"faults-tls", "required.csv"}})
    test::write_campaign_toml(root / (std::string(name) + ".toml"), name, "a@sender.test", csv);
  // A retry an hour away: one attempt each, then `kurier send` returns.
  test::write_file(root / "shaping.toml",
                   "[default]\nconnections = 2\nmessages_per_connection = 100\nretry = [\"1h\"]\n");
  const std::string ms = std::to_string(kTimeoutMs);
  std::string timeouts = "[smtp.timeouts]\n";
  for (const char* key : {"connect_ms", "greeting_ms", "ehlo_ms", "starttls_ms", "mail_ms", "rcpt_ms", "data_init_ms",
                          "data_block_ms", "data_term_ms", "rset_ms", "quit_ms"})
    timeouts += std::string(key) + " = " + ms + "\n";
  auto config = [&](const std::string& tls) {
    test::SendConfig with_tls(dns.server(), port);
    with_tls.smtp_keys = "tls = \"" + tls + "\"\n";
    with_tls.tables = timeouts;
    return test::send_config(with_tls);
  };
  test::write_file(root / "kurier.toml", config("opportunistic"));
  test::write_file(root / "kurier-required.toml", config("required"));

  const SendRun first = send_campaign(root, "faults.toml", "kurier.toml");
  const SendRun second = send_campaign(root, "faults-tls.toml", "kurier-required.toml");
  for (const SendRun* run : {&first, &second}) {
    EXPECT_LT(run->wall, kWallLimit) << "kurier hung";
    ASSERT_TRUE(WIFEXITED(run->exit_status)) << "kurier crashed: status " << run->exit_status;
    EXPECT_EQ(WEXITSTATUS(run->exit_status), 0);
    EXPECT_GT(run->hwm_kb, 0);
    EXPECT_LT(run->hwm_kb, kMaxHwmKb) << "peak RSS";
  }

  // Every recipient in the state its fault dictates.
  auto rows = report(root, "faults");
  for (auto& [address, row] : report(root, "faults-tls")) rows[address] = row;
  ASSERT_EQ(rows.size(), list.size() * kPerFault);
  std::vector<std::map<std::string, int>> outcomes(list.size());
  for (const auto& [address, row] : rows) {
    const std::size_t i = fault_of.at(address);
    ++outcomes[i][row.state];
    EXPECT_EQ(row.state, list[i].expected) << list[i].name << ": " << address << " (" << row.code << ")";
    if (!list[i].reason.empty()) {
      EXPECT_EQ(row.reason, list[i].reason) << list[i].name << ": " << address;
    }
    EXPECT_EQ(row.attempts, "1") << list[i].name << ": " << address;
  }

  // The plaintext retry after the failed handshake is visible in the attempt log.
  {
    auto json = test::run({test::binary("kurier").string(), "report", "faults", "--format", "json", "--config",
                           (root / "kurier.toml").string()});
    auto parsed = nlohmann::json::parse(json.out, nullptr, false);
    ASSERT_TRUE(parsed.is_object() && parsed.contains("recipients")) << json.out.substr(0, 2000);
    int checked = 0;
    for (const auto& r : parsed["recipients"]) {
      const std::size_t i = fault_of.at(r["recipient"].get<std::string>());
      if (list[i].name != "TLS handshake fails (opportunistic)") continue;
      ASSERT_FALSE(r["attempt_log"].empty());
      EXPECT_EQ(r["attempt_log"][0].value("tls_detail", ""), "plaintext after failed STARTTLS; policy=opportunistic")
          << r.dump();
      EXPECT_FALSE(r["attempt_log"][0].value("tls", true));
      ++checked;
    }
    EXPECT_EQ(checked, kPerFault) << json.out.substr(0, 2000);
  }

  // The sink stored exactly the delivered messages, each once.
  sink.stop();
  std::multiset<std::string> stored;
  if (fs::exists(root / "mail"))
    for (const auto& e : fs::recursive_directory_iterator(root / "mail"))
      if (e.is_regular_file()) {
        std::string text = test::read_file(e.path());
        auto at = text.find("X-Sink-Rcpt: <");
        if (at != std::string::npos) stored.insert(text.substr(at + 14, text.find('>', at) - at - 14));
      }
  int delivered = 0;
  for (const auto& [address, row] : rows) {
    if (row.state != "delivered") continue;
    ++delivered;
    EXPECT_EQ(stored.count(address), 1u) << address;
  }
  EXPECT_EQ(static_cast<int>(stored.size()), delivered);
  auto stats = nlohmann::json::parse(test::read_file(root / "stats.json"));

  std::printf("[ figures  ] faulty MX peers: %zu faults x %d recipients; sink carried out %d faults\n", list.size(),
              kPerFault, stats.value("faults", -1));
  std::printf("[ figures  ] %-40s %10s %9s %8s %7s\n", "fault", "recipients", "delivered", "deferred", "bounced");
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::printf("[ figures  ] %-40s %10d %9d %8d %7d\n", list[i].name.c_str(), kPerFault, outcomes[i]["delivered"],
                outcomes[i]["deferred"], outcomes[i]["bounced"]);
  }
  std::printf("[ figures  ] kurier send: %.1f s, peak RSS %ld kB (opportunistic run); %.1f s, %ld kB (tls required)\n",
              static_cast<double>(first.wall.count()) / 1000.0, first.hwm_kb,
              static_cast<double>(second.wall.count()) / 1000.0, second.hwm_kb);
  EXPECT_GE(stats.value("faults", 0), static_cast<int>(list.size()) - 1) << "every fault row fired";
}

}  // namespace
}  // namespace kurier
