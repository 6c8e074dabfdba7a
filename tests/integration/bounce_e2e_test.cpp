// End to end with a real MTA (issue 4, "Done when"): `kurier serve` sends a campaign
// to a private Postfix on loopback, which accepts both messages and relays them to a
// kurier-sink that refuses one recipient with 550 5.1.1. Postfix then sends its own
// DSN to the message's VERP return path, which its transport map routes to kurier's
// bounce listener. The right recipient must end `delivered` with the latest event
// `late_bounce` (userunknown) and be on the suppression list; a second campaign to the
// same addresses marks it `suppressed` and Postfix never sees it again.
//
// Postfix runs as a private instance (`postfix -c DIR start-fg`, mail_owner postfix,
// its own queue directory, no DNS: transports to bracketed loopback addresses) and is
// stopped with `postfix -c DIR stop` and by PID. Needs root (Postfix's queue owner).
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <regex>
#include <thread>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::ChildProcess;

int count_matches(const std::string& text, const std::regex& re) {
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

// Debian's master.cf with chroot off (the instance has no chroot jail) and smtpd on
// 127.0.0.1:port.
std::string master_cf(std::uint16_t port) {
  std::ifstream in("/etc/postfix/master.cf");
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ' ' || line[0] == '\t') {
      out += line + "\n";
      continue;
    }
    std::istringstream words(line);
    std::vector<std::string> cols;
    for (std::string w; words >> w;) cols.push_back(w);
    if (cols.size() > 1 && cols[0] == "smtp" && cols[1] == "inet") cols[0] = "127.0.0.1:" + std::to_string(port);
    if (cols.size() > 4 && cols[4] == "y") cols[4] = "n";
    for (std::size_t i = 0; i < cols.size(); ++i) out += (i ? " " : "") + cols[i];
    out += "\n";
  }
  return out;
}

// A private Postfix: relays fail.test to the sink and bounce.test to kurier's listener.
class PrivatePostfix {
 public:
  PrivatePostfix(const fs::path& dir, std::uint16_t smtpd_port, std::uint16_t sink_port, std::uint16_t listener_port)
      : dir_(dir) {
    for (const char* sub : {"etc", "spool", "data"}) fs::create_directories(dir / sub);
    if (chown((dir / "data").c_str(), postfix_uid(), static_cast<gid_t>(-1)) != 0)
      throw std::runtime_error("cannot chown the Postfix data directory (root needed)");
    const std::string d = dir.string();
    test::write_file(dir / "etc" / "main.cf",
                     "compatibility_level = 3.6\n"
                     "queue_directory = " + d + "/spool\n"
                     "data_directory = " + d + "/data\n"
                     "command_directory = /usr/sbin\n"
                     "daemon_directory = /usr/lib/postfix/sbin\n"
                     "shlib_directory = /usr/lib/postfix\n"
                     "meta_directory = /etc/postfix\n"
                     "mail_owner = postfix\n"
                     "setgid_group = postdrop\n"
                     "myhostname = relay.test\n"
                     "mydomain = relay.test\n"
                     "myorigin = $myhostname\n"
                     "mydestination =\n"
                     "local_recipient_maps =\n"
                     "alias_maps =\n"
                     "alias_database =\n"
                     "relay_domains = fail.test\n"
                     "inet_interfaces = 127.0.0.1\n"
                     "inet_protocols = ipv4\n"
                     "mynetworks = 127.0.0.0/8\n"
                     "smtpd_relay_restrictions = permit_mynetworks, reject\n"
                     "transport_maps = inline:{ fail.test=smtp:[127.0.0.1]:" + std::to_string(sink_port) +
                     ", bounce.test=smtp:[127.0.0.1]:" + std::to_string(listener_port) + " }\n"
                     "smtp_dns_support_level = disabled\n"
                     "smtp_host_lookup = native\n"
                     "smtp_tls_security_level = none\n"
                     "smtpd_tls_security_level = none\n"
                     "maillog_file = " + d + "/maillog\n"
                     "maillog_file_prefixes = " + d + "\n"
                     // Retry a refused DSN delivery soon (the default waits 5 minutes).
                     "queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n"
                     "biff = no\n");
    test::write_file(dir / "etc" / "master.cf", master_cf(smtpd_port));
    auto check = test::run({"/usr/sbin/postfix", "-c", (dir / "etc").string(), "check"}, std::chrono::seconds(60));
    if (check.exit_code != 0) throw std::runtime_error("postfix check failed: " + check.err);
    process_ = ChildProcess({"/usr/sbin/postfix", "-c", (dir / "etc").string(), "start-fg"}, dir / "master.out");
    if (!test::wait_for_tcp("127.0.0.1", smtpd_port, std::chrono::seconds(20)))
      throw std::runtime_error("postfix did not start: " + test::read_file(dir / "master.out"));
  }
  ~PrivatePostfix() {
    // start-fg runs the master as a child of postfix-script: `postfix stop` reaches it
    // through its pid file; the script then exits and is reaped by PID.
    test::run({"/usr/sbin/postfix", "-c", (dir_ / "etc").string(), "stop"}, std::chrono::seconds(30));
    process_.stop(SIGTERM, std::chrono::seconds(10));
  }
  std::string maillog() const {
    std::ifstream in(dir_ / "maillog");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Waits until the maillog matches `re` at least `n` times.
  bool wait_for_log(const std::regex& re, int n, std::chrono::seconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count_matches(maillog(), re) >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

 private:
  static uid_t postfix_uid() {
    auto r = test::run({"/usr/bin/id", "-u", "postfix"});
    if (r.exit_code != 0) throw std::runtime_error("no postfix user");
    return static_cast<uid_t>(std::stoul(r.out));
  }
  fs::path dir_;
  ChildProcess process_;
};

TEST(BounceEndToEnd, PostfixDsnReachesTheListenerAndTheAddressIsNeverSentAgain) {
  if (test::find_program("postfix").empty() || test::find_program("dnsmasq").empty())
    FAIL() << "Postfix and dnsmasq are required (scripts/install-deps.sh)";
  if (geteuid() != 0) GTEST_SKIP() << "a private Postfix instance needs root";

  test::TempDir dir;
  const fs::path root = dir.path();
  fs::permissions(root, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);  // Postfix's own users work below it
  const auto postfix_port = test::free_tcp_port();
  const auto sink_port = test::free_tcp_port();
  const auto listener_port = test::free_tcp_port();
  const auto http_port = test::free_tcp_port();

  test::Dnsmasq dns({"mx-host=fail.test,mx.fail.test,10", "host-record=mx.fail.test,127.0.0.1", "local=/test/"});
  test::write_file(root / "sink.toml",
                   "[[rule]]\nstage = \"rcpt\"\nmatch = \"unknown*\"\n"
                   "reply = \"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table\"\n");
  ChildProcess sink({test::binary("kurier-sink").string(), "--listen", "127.0.0.1:" + std::to_string(sink_port),
                     "--script", (root / "sink.toml").string()},
                    root / "sink.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", sink_port, std::chrono::seconds(10)));
  PrivatePostfix postfix(root / "postfix", postfix_port, sink_port, listener_port);

  test::write_file(root / "kurier.toml",
                   "[queue]\npath = \"queue\"\n"
                   "[dns]\nservers = [\"" + dns.server() + "\"]\n"
                   "[smtp]\nhelo = \"mta.sender.test\"\nport = " + std::to_string(postfix_port) + "\ntls = \"disabled\"\n"
                   "[http]\nlisten = \"127.0.0.1:" + std::to_string(http_port) + "\"\n"
                   "[bounce]\nlisten = \"127.0.0.1:" + std::to_string(listener_port) + "\"\n"
                   "[verp]\nsecret = \"e2e-secret\"\n[log]\nlevel = \"warn\"\n");
  test::write_file(root / "template.eml", "Subject: News\n\nHello {{email}}\n");
  // Two deliverable recipients: at the time of writing, a destination with a single
  // queued message was never started by the delivery engine (reported to the lead).
  test::write_file(root / "recipients.csv", "email\nok1@fail.test\nunknown1@fail.test\nok2@fail.test\n");
  for (const char* id : {"first", "second"})
    test::write_file(root / (std::string(id) + ".toml"),
                     "id = \"" + std::string(id) +
                         "\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                         "recipients = \"recipients.csv\"\n[verp]\ndomain = \"bounce.test\"\n");
  const std::string kurier = test::binary("kurier").string();
  const std::string config = (root / "kurier.toml").string();

  // --- Campaign 1 through the daemon; Postfix's DSN comes back to its listener.
  {
    ChildProcess serve({kurier, "serve", "--config", config}, root / "serve.log");
    ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", listener_port, std::chrono::seconds(20))) << test::read_file(root / "serve.log");
    ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", http_port, std::chrono::seconds(20)));
    auto submit = test::run({kurier, "submit", (root / "first.toml").string(), "--config", config});
    ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
    // Postfix bounced the message (the sink's 550) and handed its DSN to the listener,
    // which answered 250 after applying it.
    const std::regex bounced("to=<unknown1@fail\\.test>.*dsn=5\\.1\\.1, status=bounced");
    const std::regex dsn_sent("to=<b\\+[a-z2-7]+@bounce\\.test>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:" +
                              std::to_string(listener_port) + ".*status=sent");
    ASSERT_TRUE(postfix.wait_for_log(dsn_sent, 1, std::chrono::seconds(60))) << postfix.maillog();
    EXPECT_EQ(count_matches(postfix.maillog(), bounced), 1) << postfix.maillog();
    EXPECT_EQ(serve.stop(SIGTERM, std::chrono::seconds(20)) >> 8, 0) << test::read_file(root / "serve.log");
  }
  {
    auto store = queue::open_rocksdb_store((root / "queue").string());
    auto first = store->find_campaign("first");
    ASSERT_TRUE(first);
    std::map<std::string, queue::Recipient> by_address;
    store->for_each_recipient(first->id, [&](const queue::Recipient& r) {
      by_address[r.address] = r;
      return true;
    });
    const auto& unknown = by_address.at("unknown1@fail.test");
    EXPECT_EQ(unknown.status.state, queue::State::delivered) << "Postfix accepted it with 250";
    ASSERT_TRUE(unknown.status.event);
    EXPECT_EQ(unknown.status.event->kind, queue::EventKind::late_bounce);
    EXPECT_EQ(unknown.status.event->reason, "userunknown");
    EXPECT_EQ(unknown.status.event->category, "hard");
    const auto& ok = by_address.at("ok1@fail.test");
    EXPECT_EQ(ok.status.state, queue::State::delivered);
    EXPECT_FALSE(ok.status.event) << "only the bounced recipient has an event";
    auto suppressed = store->suppression("unknown1@fail.test");
    ASSERT_TRUE(suppressed);
    EXPECT_EQ(suppressed->reason, "hard-bounce userunknown");
    EXPECT_FALSE(store->suppression("ok1@fail.test"));
  }

  // --- Campaign 2 to the same list: the suppressed address is never sent again.
  auto send = test::run({kurier, "send", (root / "second.toml").string(), "--config", config, "--no-progress"},
                        std::chrono::seconds(60));
  ASSERT_EQ(send.exit_code, 0) << send.out << send.err;
  EXPECT_NE(send.out.find("1 suppressed"), std::string::npos) << send.out;
  {
    auto store = queue::open_rocksdb_store((root / "queue").string());
    auto second = store->find_campaign("second");
    ASSERT_TRUE(second);
    const std::map<std::string, queue::Status> states = test::statuses_by_address(*store, second->id);
    EXPECT_EQ(states.at("unknown1@fail.test").state, queue::State::suppressed);
    EXPECT_EQ(states.at("unknown1@fail.test").reason, "suppressed: hard-bounce userunknown");
    EXPECT_EQ(states.at("unknown1@fail.test").attempts, 0u);
    EXPECT_EQ(states.at("ok1@fail.test").state, queue::State::delivered);
  }
  // Postfix relayed ok1's second message, and saw unknown1 only once, in campaign 1.
  ASSERT_TRUE(postfix.wait_for_log(std::regex("to=<ok1@fail\\.test>.*status=sent"), 2, std::chrono::seconds(30)))
      << postfix.maillog();
  EXPECT_EQ(count_matches(postfix.maillog(), std::regex("to=<unknown1@fail\\.test>")), 1) << postfix.maillog();
}

}  // namespace
}  // namespace kurier
