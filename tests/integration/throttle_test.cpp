// Shaping under pressure (issue 3 parts 1, 3, 4) with the real `kurier send`, dnsmasq
// and kurier-sink on 127.0.6.x:
//  - a provider (three domains sharing it through match_mx) whose MX allows 5
//    connections and 50 messages/s and answers 421 beyond that: kurier, configured for
//    more, slows down and then stays within the limits; every recipient is delivered;
//  - a dead MX (accepts TCP, never greets) does not delay the other domains;
//  - deferred recipients keep their schedule across a restart and expire at max_age.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::ChildProcess;
using test::TempDir;

// One test's campaign, config and CLI runs.
struct CampaignRun {
  fs::path root;
  std::string id;

  void write_campaign(const std::vector<std::string>& recipients) const {
    test::write_file(root / "template.eml", "From: a@sender.test\nSubject: Hi {{n}}\n\nHello {{n}}\n");
    std::ostringstream csv;
    csv << "email,n\n";
    for (std::size_t i = 0; i < recipients.size(); ++i) csv << recipients[i] << "," << i << "\n";
    test::write_file(root / "recipients.csv", csv.str());
    test::write_campaign_toml(root / "campaign.toml", id, "a@sender.test");
  }
  void write_config(const test::Dnsmasq& dns, std::uint16_t port, const std::string& shaping,
                    const std::string& tables = "") const {
    test::write_file(root / "shaping.toml", shaping);
    test::SendConfig config(dns.server(), port);
    config.smtp_keys = "tls = \"disabled\"\n";
    config.tables = tables;
    test::write_file(root / "kurier.toml", test::send_config(config));
  }
  test::RunResult send(bool wait, std::chrono::seconds timeout = std::chrono::seconds(120)) const {
    return test::send_campaign(root, wait, timeout);
  }
  // recipient -> {state, reason, attempts}, from `kurier report --format csv`.
  std::map<std::string, std::vector<std::string>> report() const {
    auto r = test::report_csv(root / "kurier.toml", id);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& cols : test::split_csv(r.out).fields)
      if (cols.size() >= 8) out[cols[0]] = {cols[1], cols[3], cols[7]};
    return out;
  }
};

std::map<std::string, int> count_states(const std::map<std::string, std::vector<std::string>>& report) {
  std::map<std::string, int> n;
  for (const auto& [rcpt, cols] : report) ++n[cols[0]];
  return n;
}

// Each test's directory and the SMTP port its sink (and any blackhole) listens on.
class ThrottleIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
  }

  // Starts kurier-sink with `args`, listening on `ip` at the test's port; its log goes
  // to sink.log in the test's directory.
  ChildProcess start_sink(std::vector<std::string> args, const std::string& ip) const {
    std::vector<std::string> argv = {test::binary("kurier-sink").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--listen", ip + ":" + std::to_string(port_)});
    return ChildProcess(argv, dir_.path() / "sink.log");
  }

  TempDir dir_;
  const std::uint16_t port_ = test::free_tcp_port();
};

// The sink allows 5 parallel connections and 50 MAIL commands per second on its address
// and answers 421 beyond either. kurier is configured for 20 connections and 180/s
// (halved twice that is 45/s: paced messages that fire a little late cannot push a
// wall-clock second over 50).
//
// What is asserted, and why this way: the sink itself never lets more than the limits
// through (it refuses the excess), so "accepted per second <= 50" would hold for any
// sender. What shows kurier's behaviour is how often it *tries* beyond the limits: the
// sink's per-second timeline counts every connection and every MAIL, refused or not.
// kurier must (1) hit the limits at first (else the test proves nothing), (2) react:
// from kReactionWindow seconds after its first connection on, no second has a refused
// connection or a refused MAIL, i.e. at most 5 concurrent connections and at most 50
// MAIL commands in every such second, and (3) spend a real part of the run in that
// regime (so the quiet tail is not just the end of the campaign), (4) lose nothing:
// every recipient delivered, each exactly once at the sink.
TEST_F(ThrottleIntegration, ProviderSharedByThreeDomainsSlowsDownToTheSinkLimits) {
  constexpr int kPerDomain = 150;
  constexpr std::size_t kReactionWindow = 6;  // seconds
  CampaignRun run{dir_.path(), "throttle"};
  test::Dnsmasq dns({"mx-host=p1.test,mx1.prov.test,10", "mx-host=p2.test,mx2.prov.test,10",
                     "mx-host=p3.test,mx3.prov.test,10", "host-record=mx1.prov.test,127.0.6.1",
                     "host-record=mx2.prov.test,127.0.6.1", "host-record=mx3.prov.test,127.0.6.1", "local=/test/"});
  test::write_file(run.root / "sink.toml", "max_connections = 5\nmax_messages_per_second = 50\n");
  ChildProcess sink = start_sink(
      {"--script", (run.root / "sink.toml").string(), "--stats", (run.root / "stats.json").string()}, "127.0.6.1");
  ASSERT_TRUE(test::wait_for_tcp("127.0.6.1", port_, std::chrono::seconds(10)));

  std::vector<std::string> recipients;
  for (int i = 0; i < kPerDomain; ++i)
    for (int d = 1; d <= 3; ++d) recipients.push_back("u" + std::to_string(i) + "@p" + std::to_string(d) + ".test");
  run.write_campaign(recipients);
  // The reaction rules are the built-in ones ("too many connections", "rate limit");
  // a long hold and recovery interval keep kurier from probing upwards again during
  // the test, so the tail shows the slowed state only.
  run.write_config(dns, port_,
                   "[default]\nretry = [\"1s\"]\nmax_age = \"10m\"\n"
                   "[provider.prov]\nmatch_mx = [\"*.prov.test\"]\nconnections = 20\nrate = \"180/s\"\n"
                   "messages_per_connection = 1000\nrecovery_interval = \"10m\"\n"
                   "[[provider.prov.on_reply]]\npattern = 'too many connections|rate limit'\naction = \"slow\"\n"
                   "duration = \"10m\"\n");
  auto sent = run.send(true);
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  auto report = run.report();
  ASSERT_EQ(report.size(), recipients.size());
  auto states = count_states(report);
  EXPECT_EQ(states["delivered"], static_cast<int>(recipients.size())) << "none lost, bounced or expired";

  // The sink rewrites its stats every 200 ms and on exit: stop it for the final figures.
  sink.stop();
  auto stats = nlohmann::json::parse(test::read_file(run.root / "stats.json"));
  EXPECT_EQ(stats["messages"].get<int>(), static_cast<int>(recipients.size())) << "each delivered exactly once";
  const auto& timeline = stats["timeline"];
  std::size_t first = 0;
  while (first < timeline.size() && timeline[first]["connections"].get<int>() == 0) ++first;
  ASSERT_LT(first, timeline.size());
  std::size_t last_active = first, refused_early = 0, refused_late = 0, busy_late_seconds = 0;
  int max_mail_late = 0, max_peak_late = 0;
  for (std::size_t s = first; s < timeline.size(); ++s) {
    const auto& t = timeline[s];
    const int refused = t["rejected_rate"].get<int>() + t["rejected_connections"].get<int>();
    if (t["mail"].get<int>() > 0) last_active = s;
    if (s < first + kReactionWindow) {
      refused_early += static_cast<std::size_t>(refused);
      continue;
    }
    refused_late += static_cast<std::size_t>(refused);
    if (t["mail"].get<int>() > 0) ++busy_late_seconds;
    max_mail_late = std::max(max_mail_late, t["mail"].get<int>());
    max_peak_late = std::max(max_peak_late, t["peak_concurrent"].get<int>());
  }
  std::printf("[ figures  ] throttle: %zu recipients in %zu s at the sink; 421s in the first %zu s: %zu, later: %zu; "
              "later max MAIL/s %d, max concurrent %d over %zu busy seconds\n",
              recipients.size(), last_active - first + 1, kReactionWindow, refused_early, refused_late,
              max_mail_late, max_peak_late, busy_late_seconds);
  EXPECT_GT(refused_early, 0u) << "kurier never exceeded the sink's limits: the test proves nothing";
  EXPECT_EQ(refused_late, 0u) << "kurier kept pushing beyond the limits after its reaction window";
  EXPECT_LE(max_mail_late, 50);
  EXPECT_LE(max_peak_late, 5);
  EXPECT_GE(busy_late_seconds, 3u) << "the slowed regime must be a real part of the run";
}

// A listener that accepts TCP (kernel backlog) but never reads or greets: the worst
// kind of dead MX, each session waits for the greeting timeout.
class Blackhole {
 public:
  Blackhole(const std::string& ip, std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 128) != 0)
      throw std::runtime_error("blackhole: cannot listen on " + ip);
  }
  ~Blackhole() { ::close(fd_); }
  Blackhole(const Blackhole&) = delete;
  Blackhole& operator=(const Blackhole&) = delete;

 private:
  int fd_ = -1;
};

TEST_F(ThrottleIntegration, DeadMxDoesNotStallOtherDomains) {
  constexpr int kGreetingTimeoutMs = 8000;
  CampaignRun run{dir_.path(), "deadmx"};
  test::Dnsmasq dns({"mx-host=ok1.test,mx.ok1.test,10", "host-record=mx.ok1.test,127.0.6.2",
                     "mx-host=ok2.test,mx.ok2.test,10", "host-record=mx.ok2.test,127.0.6.2",
                     "mx-host=dead.test,mx.dead.test,10", "host-record=mx.dead.test,127.0.6.9", "local=/test/"});
  Blackhole dead("127.0.6.9", port_);
  ChildProcess sink = start_sink({"--stats", (run.root / "stats.json").string()}, "127.0.6.2");
  ASSERT_TRUE(test::wait_for_tcp("127.0.6.2", port_, std::chrono::seconds(10)));
  std::vector<std::string> recipients;
  for (int i = 0; i < 100; ++i) {
    recipients.push_back("d" + std::to_string(i) + "@dead.test");  // dead first: it is dispatched first
    recipients.push_back("a" + std::to_string(i) + "@ok1.test");
    recipients.push_back("b" + std::to_string(i) + "@ok2.test");
  }
  run.write_campaign(recipients);
  run.write_config(dns, port_, "[default]\nconnections = 5\nretry = [\"5m\"]\n",
                   "[smtp.timeouts]\nconnect_ms = 2000\ngreeting_ms = " + std::to_string(kGreetingTimeoutMs) + "\n");
  const auto started = std::chrono::steady_clock::now();
  auto sent = run.send(false);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  auto report = run.report();
  int ok_delivered = 0, dead_deferred = 0;
  for (const auto& [rcpt, cols] : report) {
    if (rcpt.ends_with("@dead.test")) dead_deferred += cols[0] == "deferred" && cols[1] == "networkerror";
    else ok_delivered += cols[0] == "delivered";
  }
  EXPECT_EQ(ok_delivered, 200);
  EXPECT_EQ(dead_deferred, 100) << "the dead MX's recipients wait for their retry";
  EXPECT_GE(elapsed, std::chrono::milliseconds(kGreetingTimeoutMs)) << "kurier did wait for the dead MX";

  // The sink received all 200 well before the dead MX's greeting timeout ran out:
  // the other domains went at their normal pace meanwhile.
  sink.stop();  // its final stats (rewritten every 200 ms and on exit)
  auto stats = nlohmann::json::parse(test::read_file(run.root / "stats.json"));
  EXPECT_EQ(stats["messages"].get<int>(), 200);
  const auto& timeline = stats["timeline"];
  std::size_t first = 0, last = 0;
  while (first < timeline.size() && timeline[first]["connections"].get<int>() == 0) ++first;
  for (std::size_t s = first; s < timeline.size(); ++s)
    if (timeline[s]["messages"].get<int>() > 0) last = s;
  std::printf("[ figures  ] dead MX: 200 messages to live domains within %zu s; kurier send took %.1f s "
              "(greeting timeout %d ms)\n",
              last - first + 1, std::chrono::duration<double>(elapsed).count(), kGreetingTimeoutMs);
  EXPECT_LT(last - first + 1, static_cast<std::size_t>(kGreetingTimeoutMs / 1000 / 2));
}

TEST_F(ThrottleIntegration, DeferredRecipientsKeepTheirScheduleAcrossRestartsAndExpire) {
  CampaignRun run{dir_.path(), "restart"};
  test::Dnsmasq dns({"mx-host=r.test,mx.r.test,10", "host-record=mx.r.test,127.0.6.3", "local=/test/"});
  test::write_file(run.root / "sink.toml", R"(
[[rule]]
stage = "rcpt"
match = "later*"
times = 1
reply = "451 4.3.0 <{rcpt}>: Temporary local problem"
[[rule]]
stage = "rcpt"
match = "never*"
reply = "451 4.3.0 <{rcpt}>: Temporary local problem"
)");
  ChildProcess sink = start_sink({"--script", (run.root / "sink.toml").string()}, "127.0.6.3");
  ASSERT_TRUE(test::wait_for_tcp("127.0.6.3", port_, std::chrono::seconds(10)));
  std::vector<std::string> recipients;
  for (int i = 0; i < 5; ++i) {
    recipients.push_back("later" + std::to_string(i) + "@r.test");
    recipients.push_back("never" + std::to_string(i) + "@r.test");
    recipients.push_back("now" + std::to_string(i) + "@r.test");
  }
  run.write_campaign(recipients);
  run.write_config(dns, port_, "[default]\nretry = [\"3s\", \"60m\"]\nmax_age = \"7s\"\n");

  // First process: sends once and returns (no --wait) with the 4xx ones deferred.
  auto first = run.send(false);
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  std::map<std::string, std::int64_t> first_attempt_ms;
  {
    auto store = queue::open_rocksdb_store((run.root / "queue").string());
    auto campaign = store->find_campaign("restart");
    ASSERT_TRUE(campaign);
    store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
      const auto& s = r.status;
      if (r.address.starts_with("now")) {
        EXPECT_EQ(s.state, queue::State::delivered) << r.address;
      } else {
        EXPECT_EQ(s.state, queue::State::deferred) << r.address;
        EXPECT_EQ(s.next_attempt_ms - s.last_attempt_ms, 3000) << "first step of the retry schedule";
        EXPECT_EQ(s.backoff, 1u);
        first_attempt_ms[r.address] = s.last_attempt_ms;
      }
      return true;
    });
  }
  // A new process continues from the store, on the stored schedule.
  auto second = run.send(true, std::chrono::seconds(60));
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  auto store = queue::open_rocksdb_store((run.root / "queue").string());
  auto campaign = store->find_campaign("restart");
  ASSERT_TRUE(campaign);
  int checked = 0;
  store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
    const auto& s = r.status;
    auto log = store->attempts(r.key);
    if (r.address.starts_with("later")) {
      EXPECT_EQ(s.state, queue::State::delivered) << r.address;
      EXPECT_EQ(log.size(), 2u) << r.address;
      if (log.size() == 2) {
        EXPECT_GE(log[1].time_ms - first_attempt_ms[r.address], 3000) << "not before it was due";
      }
      ++checked;
    } else if (r.address.starts_with("never")) {
      EXPECT_EQ(s.state, queue::State::expired) << r.address;
      EXPECT_EQ(s.category, "soft");
      EXPECT_EQ(s.reason, "expired");
      // Tried at 0 s, at 3 s, then at max age (7 s): the 60 min step is cut short.
      EXPECT_EQ(log.size(), 3u) << r.address;
      if (!log.empty()) {
        EXPECT_GE(log.back().time_ms - campaign->created_ms, 7000);
      }
      ++checked;
    }
    return true;
  });
  EXPECT_EQ(checked, 10);
}

}  // namespace
}  // namespace kurier
