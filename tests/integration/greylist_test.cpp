// A real greylist (issue 3 "Done when"): a private Postfix instance on 127.0.0.1 is the
// MX, asking the postgrey policy server (3 s delay) about every recipient; dnsmasq
// points two domains at it. `kurier send --wait` must deliver every recipient after the
// greylist window with at most two attempts each, none counted as a failure.
#include <gtest/gtest.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::ChildProcess;
using test::TempDir;

constexpr int kGreylistDelaySeconds = 3;  // postgrey --delay

// Postfix's master.cf from the package with every service unchrooted (a private
// instance has no chroot tree) and the public smtpd replaced by ours on `listen`.
std::string private_master_cf(const std::string& listen) {
  std::ifstream in("/etc/postfix/master.cf");
  std::ostringstream out;
  out << listen << " inet n - n - - smtpd\n";
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == ' ' || line[0] == '\t') {
      out << line << "\n";  // continuation (-o options) of the service above
      continue;
    }
    std::istringstream fields(line);
    std::vector<std::string> f;
    std::string w;
    while (fields >> w) f.push_back(w);
    if (f.size() < 8 || (f[0] == "smtp" && f[1] == "inet")) {
      // Skip the public smtpd and its continuation lines.
      while (in.peek() == ' ' || in.peek() == '\t') std::getline(in, line);
      continue;
    }
    f[4] = "n";
    for (std::size_t i = 0; i < f.size(); ++i) out << (i ? " " : "") << f[i];
    out << "\n";
  }
  return out.str();
}

class GreylistIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* program : {"dnsmasq", "postfix", "postgrey"})
      if (test::find_program(program).empty())
        FAIL() << program << " is required (scripts/install-deps.sh: dnsmasq-base, postfix, postgrey)";
    if (!fs::exists("/usr/lib/postfix/sbin/master")) FAIL() << "Postfix's master daemon is missing";
  }
};

TEST_F(GreylistIntegration, PostfixWithPostgreyDeliversEveryRecipientOnTheSecondAttempt) {
  TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t smtp_port = test::free_tcp_port();
  const std::uint16_t policy_port = test::free_tcp_port();
  ASSERT_NE(smtp_port, policy_port);

  // --- postgrey, in the foreground, stopped by its PID.
  fs::create_directories(root / "postgrey");
  const bool root_user = ::getuid() == 0;
  std::string user = root_user ? "root" : ::getpwuid(::getuid())->pw_name;
  std::string group = root_user ? "root" : ::getgrgid(::getgid())->gr_name;
  ChildProcess postgrey({test::find_program("postgrey").string(), "--inet=127.0.0.1:" + std::to_string(policy_port),
                         "--delay=" + std::to_string(kGreylistDelaySeconds), "--dbdir=" + (root / "postgrey").string(),
                         "--pidfile=" + (root / "postgrey.pid").string(), "--user=" + user, "--group=" + group,
                         // Every triplet is greylisted; no client earns a pass by delivering.
                         "--auto-whitelist-clients=0"},
                        root / "postgrey.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", policy_port, std::chrono::seconds(20))) << test::read_file(root / "postgrey.log");

  // --- A private Postfix: smtpd on 127.0.0.1:smtp_port, recipients checked by
  // postgrey, accepted mail discarded.
  // Postfix's daemons run as the postfix user: they must reach the spool and data
  // directories inside the (0700) temp dir.
  fs::permissions(root, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  const fs::path etc = root / "etc";
  fs::create_directories(etc);
  fs::create_directories(root / "spool");
  fs::create_directories(root / "data");
  if (root_user) {
    if (const passwd* pw = ::getpwnam("postfix")) {
      ASSERT_EQ(::chown((root / "data").c_str(), pw->pw_uid, pw->pw_gid), 0);
    }
  }
  test::write_file(etc / "main.cf",
                   "compatibility_level = 3.6\n"
                   "queue_directory = " + (root / "spool").string() + "\n"
                   "data_directory = " + (root / "data").string() + "\n"
                   "mail_owner = postfix\nsetgid_group = postdrop\n"
                   "myhostname = mx.grey.test\nmydestination =\n"
                   "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n"
                   "relay_domains = g1.test, g2.test\nrelay_transport = discard:\ndefault_transport = discard:\n"
                   "smtpd_relay_restrictions = reject_unauth_destination\n"
                   "smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:" +
                       std::to_string(policy_port) + "\n"
                   "maillog_file = " + (root / "maillog").string() + "\n"
                   "maillog_file_prefixes = " + root.string() + "\n"
                   "biff = no\n");
  test::write_file(etc / "master.cf", private_master_cf("127.0.0.1:" + std::to_string(smtp_port)));
  auto check = test::run({test::find_program("postfix").string(), "-c", etc.string(), "check"});
  ASSERT_EQ(check.exit_code, 0) << check.out << check.err;
  ChildProcess postfix({"/usr/lib/postfix/sbin/master", "-c", etc.string(), "-d"}, root / "master.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", smtp_port, std::chrono::seconds(20)))
      << (fs::exists(root / "maillog") ? test::read_file(root / "maillog") : "") << test::read_file(root / "master.log");

  // --- DNS and the campaign.
  test::Dnsmasq dns({"mx-host=g1.test,mx.grey.test,10", "mx-host=g2.test,mx.grey.test,10",
                     "host-record=mx.grey.test,127.0.0.1", "local=/test/"});
  std::ostringstream csv;
  csv << "email,n\n";
  constexpr int kRecipients = 20;
  for (int i = 0; i < kRecipients; ++i) csv << "user" << i << "@g" << (i % 2 + 1) << ".test," << i << "\n";
  test::write_file(root / "recipients.csv", csv.str());
  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: Hi {{n}}\n\nHello {{n}}\n");
  test::write_file(root / "campaign.toml",
                   "id = \"greylist\"\nfrom = \"a@sender.test\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
  // The ordinary retry schedule starts at 10 minutes: only the greylist delay (5 s,
  // the postgrey window plus margin) can bring the retry within this test.
  test::write_file(root / "shaping.toml",
                   "[default]\nretry = [\"10m\"]\nmax_age = \"1h\"\ngreylist_delay = \"" +
                       std::to_string(kGreylistDelaySeconds + 2) + "s\"\n");
  test::write_file(root / "kurier.toml", "[queue]\npath = \"queue\"\n[dns]\nservers = [\"" + dns.server() +
                                             "\"]\n[smtp]\nhelo = \"mta.sender.test\"\nport = " +
                                             std::to_string(smtp_port) +
                                             "\ntls = \"disabled\"\n[shaping]\nfile = \"shaping.toml\"\n"
                                             "[verp]\nsecret = \"s\"\n");
  auto sent = test::run({test::binary("kurier").string(), "send", (root / "campaign.toml").string(), "--config",
                         (root / "kurier.toml").string(), "--wait", "--no-progress"},
                        std::chrono::seconds(60));
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err << "\nPostfix log:\n"
                               << test::read_file(root / "maillog").substr(0, 4000) << "\npostgrey log:\n"
                               << test::read_file(root / "postgrey.log").substr(0, 2000);

  // --- Every recipient: greylisted once by Postfix/postgrey, delivered on the retry
  // after the window, never counted as a failure.
  auto store = queue::open_rocksdb_store((root / "queue").string());
  auto campaign = store->find_campaign("greylist");
  ASSERT_TRUE(campaign);
  auto counts = store->counts(campaign->id);
  EXPECT_EQ(counts.delivered, static_cast<std::uint64_t>(kRecipients));
  EXPECT_EQ(counts.bounced + counts.expired + counts.deferred + counts.queued, 0u) << "none reported as failed";
  int greylisted_first = 0;
  store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
    auto log = store->attempts(r.key);
    EXPECT_EQ(r.status.state, queue::State::delivered) << r.address;
    EXPECT_LE(log.size(), 2u) << r.address;
    EXPECT_EQ(r.status.backoff, 0u) << r.address << ": greylisting advanced the retry schedule";
    if (log.size() == 2) {
      const auto& first = log[0];
      EXPECT_EQ(first.code, 450) << r.address;
      EXPECT_EQ(first.enhanced, "4.2.0");
      EXPECT_NE(first.text.find("Recipient address rejected: Greylisted"), std::string::npos) << first.text;
      EXPECT_EQ(first.classification, "deferred greylisted");
      EXPECT_EQ(log[1].code, 250);
      EXPECT_EQ(log[1].classification, "delivered");
      EXPECT_GE(log[1].time_ms - first.time_ms, kGreylistDelaySeconds * 1000) << "retried inside the window";
      ++greylisted_first;
    }
    return true;
  });
  EXPECT_EQ(greylisted_first, kRecipients) << "every triplet is new to postgrey: each must be greylisted once";
  const std::string maillog = test::read_file(root / "maillog");
  std::size_t greylist_lines = 0;
  for (auto pos = maillog.find("Greylisted"); pos != std::string::npos; pos = maillog.find("Greylisted", pos + 1))
    ++greylist_lines;
  EXPECT_GE(greylist_lines, static_cast<std::size_t>(kRecipients)) << "Postfix logged the postgrey verdicts";
  std::printf("[ figures  ] greylist: %d recipients via Postfix+postgrey (delay %d s): %d greylisted once, "
              "delivered on the 2nd attempt\n",
              kRecipients, kGreylistDelaySeconds, greylisted_first);
}

}  // namespace
}  // namespace kurier
