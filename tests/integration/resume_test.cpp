// Interrupted runs resume from the queue: after Ctrl-C (SIGINT) nobody is sent
// twice; after SIGKILL at most the in-flight window is resent (at-least-once).
// Real kurier binary, dnsmasq and kurier-sink on loopback.
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::ChildProcess;

constexpr int kRecipients = 3000;
constexpr int kWindow = 300;  // [engine] window: the most a crash may resend

struct ResumeRun {
  int stored = 0;                         // messages the sink stored
  std::map<std::string, int> per_rcpt;    // copies received per recipient
  std::map<std::string, int> states;      // from kurier report
};

ResumeRun interrupted_then_resumed(int signal) {
  test::TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t port = test::free_tcp_port();
  test::Dnsmasq dns({"mx-host=r1.test,mx.r1.test,10", "host-record=mx.r1.test,127.0.5.1",
                     "mx-host=r2.test,mx.r2.test,10", "host-record=mx.r2.test,127.0.5.2"});
  // Slow replies stretch the run to a few seconds so the signal lands mid-delivery.
  test::write_file(root / "sink.toml", "reply_delay_ms = 2\n");
  ChildProcess sink({test::binary("kurier-sink").string(), "--script", (root / "sink.toml").string(), "--store",
                     (root / "mail").string(), "--listen", "127.0.5.1:" + std::to_string(port), "--listen",
                     "127.0.5.2:" + std::to_string(port)},
                    root / "sink.log");
  EXPECT_TRUE(test::wait_for_tcp("127.0.5.1", port, std::chrono::seconds(10)));

  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: Hi {{n}}\n\nHello {{n}}\n");
  std::ostringstream csv;
  csv << "email,n\n";
  for (int i = 0; i < kRecipients; ++i) csv << "u" << i << "@r" << (i % 2 + 1) << ".test," << i << "\n";
  test::write_file(root / "recipients.csv", csv.str());
  test::write_campaign_toml(root / "campaign.toml", "resume", "a@sender.test");
  test::write_file(root / "shaping.toml", "[default]\nconnections = 4\nmessages_per_connection = 1000\n");
  test::SendConfig config(dns.server(), port);
  config.smtp_keys = "tls = \"disabled\"\n";
  config.tables = "[engine]\nwindow = " + std::to_string(kWindow) + "\n";
  test::write_file(root / "kurier.toml", test::send_config(config));
  const std::vector<std::string> send = {test::binary("kurier").string(), "send", (root / "campaign.toml").string(),
                                         "--config", (root / "kurier.toml").string(), "--no-progress"};
  {
    ChildProcess first(send, root / "first.log");
    // Wait until some mail has arrived, then interrupt.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    auto stored_now = [&] {
      int n = 0;
      if (fs::exists(root / "mail"))
        for (const auto& e : fs::recursive_directory_iterator(root / "mail"))
          if (e.path().extension() == ".eml") ++n;
      return n;
    };
    while (stored_now() < kRecipients / 5 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int status = first.stop(signal, std::chrono::seconds(30));
    EXPECT_LT(stored_now(), kRecipients) << "the run ended before the signal: the test proves nothing";
    if (signal == SIGINT) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << status;
    }
  }
  auto second = test::run(send, std::chrono::seconds(120));
  EXPECT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_NE(second.out.find("already queued"), std::string::npos) << second.out;

  ResumeRun run;
  auto report = test::report_csv(root / "kurier.toml", "resume");
  std::istringstream lines(report.out);
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    auto first_comma = line.find(',');
    auto second_comma = line.find(',', first_comma + 1);
    ++run.states[line.substr(first_comma + 1, second_comma - first_comma - 1)];
  }
  sink.stop();
  for (const auto& e : fs::recursive_directory_iterator(root / "mail")) {
    if (e.path().extension() != ".eml") continue;
    ++run.stored;
    std::string m = test::read_file(e.path());
    auto pos = m.find("X-Sink-Rcpt: ");
    ++run.per_rcpt[m.substr(pos + 13, m.find("\r\n", pos) - pos - 13)];
  }
  return run;
}

TEST(Resume, AfterCtrlCNobodyIsSentTwiceAndEveryoneIsDelivered) {
  ResumeRun run = interrupted_then_resumed(SIGINT);
  EXPECT_EQ(run.states["delivered"], kRecipients);
  EXPECT_EQ(run.per_rcpt.size(), static_cast<std::size_t>(kRecipients));
  EXPECT_EQ(run.stored, kRecipients) << "duplicates after a graceful stop";
  std::printf("[ figures  ] SIGINT: %d recipients, %d messages received, %d duplicates\n", kRecipients, run.stored,
              run.stored - kRecipients);
}

TEST(Resume, AfterSigkillDuplicatesAreBoundedByTheWindow) {
  ResumeRun run = interrupted_then_resumed(SIGKILL);
  EXPECT_EQ(run.states["delivered"], kRecipients);
  EXPECT_EQ(run.per_rcpt.size(), static_cast<std::size_t>(kRecipients)) << "a recipient was lost";
  const int duplicates = run.stored - kRecipients;
  EXPECT_GE(duplicates, 0);
  EXPECT_LE(duplicates, kWindow);
  std::printf("[ figures  ] SIGKILL: %d recipients, %d messages received, %d duplicates (window %d)\n", kRecipients,
              run.stored, duplicates, kWindow);
}

}  // namespace
}  // namespace kurier
