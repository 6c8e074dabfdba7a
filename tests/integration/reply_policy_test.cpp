// How delivery treats what the MX answers, end to end with the real `kurier send`,
// dnsmasq and kurier-sink on 127.0.8.x:
//  - a greylisting reply that says "retry in N seconds" is retried after N seconds,
//    not after the configured greylist delay nor the retry schedule (issue 3 part 2);
//  - `[bounce] rules = "ops.toml"` in kurier.toml classifies inline replies before the
//    built-in rules (a provider's own full-mailbox code behind a 5.1.1 is mailboxfull, not an
//    unknown user, so nothing is suppressed).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;

class ReplyPolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
    root_ = dir_.path();
    port_ = test::free_tcp_port();
    dns_ = std::make_unique<test::Dnsmasq>(
        std::vector<std::string>{"mx-host=rp.test,mx.rp.test,10", "host-record=mx.rp.test,127.0.8.1", "local=/test/"});
  }

  // kurier-sink on 127.0.8.1 with `script`, stopped by PID with the fixture.
  void start_sink(const std::string& script) {
    test::write_file(root_ / "sink.toml", script);
    sink_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{test::binary("kurier-sink").string(), "--script", (root_ / "sink.toml").string(),
                                 "--listen", "127.0.8.1:" + std::to_string(port_)},
        root_ / "sink.log");
    ASSERT_TRUE(test::wait_for_tcp("127.0.8.1", port_, std::chrono::seconds(10)));
  }

  // Campaign "rp" to `recipients` and a config with `shaping` and `extra` blocks;
  // runs `kurier send --wait`.
  test::RunResult send(const std::vector<std::string>& recipients, const std::string& shaping,
                       const std::string& extra = "") {
    std::ostringstream csv;
    csv << "email\n";
    for (const auto& r : recipients) csv << r << "\n";
    test::write_file(root_ / "recipients.csv", csv.str());
    test::write_file(root_ / "template.eml", "From: a@sender.test\nSubject: Hi\n\nHello\n");
    test::write_file(root_ / "campaign.toml",
                     "id = \"rp\"\nfrom = \"a@sender.test\"\ntemplate = \"template.eml\"\n"
                     "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
    test::write_file(root_ / "shaping.toml", shaping);
    test::write_file(root_ / "kurier.toml", "[queue]\npath = \"queue\"\n[dns]\nservers = [\"" + dns_->server() +
                                                "\"]\n[smtp]\nport = " + std::to_string(port_) +
                                                "\ntls = \"disabled\"\n[shaping]\nfile = \"shaping.toml\"\n"
                                                "[verp]\nsecret = \"s\"\n" + extra);
    return test::run({test::binary("kurier").string(), "send", (root_ / "campaign.toml").string(), "--config",
                      (root_ / "kurier.toml").string(), "--wait", "--no-progress"},
                     std::chrono::seconds(60));
  }

  test::TempDir dir_;
  fs::path root_;
  std::uint16_t port_ = 0;
  std::unique_ptr<test::Dnsmasq> dns_;
  std::unique_ptr<test::ChildProcess> sink_;
};

TEST_F(ReplyPolicy, GreylistRetryHonoursTheServersHint) {
  constexpr int kHintSeconds = 2;
  start_sink("[[rule]]\nstage = \"rcpt\"\nmatch = \"grey*\"\ntimes = 1\n"
             "reply = \"451 4.7.1 <{rcpt}>: Greylisted, please retry in " + std::to_string(kHintSeconds) +
             " seconds\"\n");
  // Without the hint the retry would come after 10 minutes at the earliest: only
  // honouring it can finish this run within the test's time.
  auto sent = send({"grey1@rp.test", "grey2@rp.test", "plain@rp.test"},
                   "[default]\nretry = [\"10m\"]\ngreylist_delay = \"10m\"\nmax_age = \"1h\"\n");
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  auto store = queue::open_rocksdb_store((root_ / "queue").string());
  auto campaign = store->find_campaign("rp");
  ASSERT_TRUE(campaign);
  int greylisted = 0;
  store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
    auto log = store->attempts(r.key);
    EXPECT_EQ(r.status.state, queue::State::delivered) << r.address;
    EXPECT_EQ(r.status.backoff, 0u) << r.address << ": greylisting is not a counted failure";
    if (!r.address.starts_with("grey")) {
      EXPECT_EQ(log.size(), 1u) << r.address;
      return true;
    }
    EXPECT_EQ(log.size(), 2u) << r.address;
    if (log.size() != 2) return true;
    EXPECT_EQ(log[0].code, 451);
    EXPECT_EQ(log[0].classification, "deferred greylisted");
    const auto waited = log[1].time_ms - log[0].time_ms;
    EXPECT_GE(waited, kHintSeconds * 1000) << "retried before the server's hint";
    EXPECT_LT(waited, 30'000) << "the hint, not greylist_delay (10 min), set the retry";
    EXPECT_EQ(log[1].code, 250);
    ++greylisted;
    return true;
  });
  EXPECT_EQ(greylisted, 2);
}

TEST_F(ReplyPolicy, OpsBounceRulesClassifyDeliveryReplies) {
  start_sink("[[rule]]\nstage = \"rcpt\"\nmatch = \"full*\"\n"
             "reply = \"550 5.1.1 <{rcpt}>: ACME-Q17 account parked\"\n"
             "[[rule]]\nstage = \"rcpt\"\nmatch = \"gone*\"\n"
             "reply = \"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\"\n");
  test::write_file(root_ / "ops-rules.toml", "[[pattern]]\nreason = \"mailboxfull\"\ncontains = [\"acme-q17\"]\n");
  auto sent = send({"full@rp.test", "gone@rp.test", "ok@rp.test"}, "[default]\nretry = [\"10m\"]\n",
                   "[bounce]\nrules = \"ops-rules.toml\"\n");
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  auto store = queue::open_rocksdb_store((root_ / "queue").string());
  auto campaign = store->find_campaign("rp");
  ASSERT_TRUE(campaign);
  std::map<std::string, queue::Status> status = test::statuses_by_address(*store, campaign->id);
  ASSERT_EQ(status.size(), 3u);
  // The ops rule: the 5.1.1 with ACME's Q17 code is a full mailbox (soft).
  EXPECT_EQ(status["full@rp.test"].state, queue::State::bounced);
  EXPECT_EQ(status["full@rp.test"].reason, "mailboxfull");
  EXPECT_EQ(status["full@rp.test"].category, "soft");
  EXPECT_FALSE(store->suppression("full@rp.test")) << "a soft bounce is not suppressed at once";
  // The built-in rules still decide everything else.
  EXPECT_EQ(status["gone@rp.test"].reason, "userunknown");
  EXPECT_EQ(status["gone@rp.test"].category, "hard");
  EXPECT_TRUE(store->suppression("gone@rp.test"));
  EXPECT_EQ(status["ok@rp.test"].state, queue::State::delivered);
  auto log = store->attempts({campaign->id, 1});
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].classification, "bounced soft mailboxfull");
}

}  // namespace
}  // namespace kurier
