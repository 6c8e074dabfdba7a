// kurier.toml `[bounce] rules = "file.toml"`: the ops rules file is loaded with the
// config (bad files named with line and field), and the bounce classifiers of the
// engine use it before the built-in rules: the reply classifier of delivery, the bounce
// listener of `kurier serve` (real smtplib client on loopback) and `kurier bounce
// ingest`. Delivery replies end to end: tests/integration/reply_policy_test.cpp (OpsBounceRulesClassifyDeliveryReplies).
#include <gtest/gtest.h>

#include "bounce/bounce.h"
#include "engine/bounces/listener.h"
#include "engine/intake/campaign.h"
#include "engine/delivery/classify.h"
#include "engine/core/config.h"
#include "engine/cli/ingest_command.h"
#include "engine/core/input_error.h"
#include "engine/core/verp.h"
#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {
namespace fs = std::filesystem;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kSecret = "rules-secret";

// A mailbox provider's full-mailbox code behind a "5.1.1": the built-in rules take the
// status code at its word (userunknown, hard: the address would be suppressed); the
// ops file knows this provider and calls it a full mailbox.
constexpr const char* kQuotaDiagnostic = "550 5.1.1 <bob@x.test>: ACME-Q17 account parked";
constexpr const char* kOpsRules =
    "# ops rules for ACME's mailbox provider\n"
    "[[pattern]]\n"
    "reason = \"mailboxfull\"\n"
    "contains = [\"acme-q17\"]\n";

class BounceRulesConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    test::write_file(root_ / "template.eml", "Subject: Hi\n\nHello\n");
    test::write_file(root_ / "recipients.csv", "email\nann@x.test\nbob@x.test\n");
    test::write_file(root_ / "campaign.toml",
                     "id = \"c1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                     "recipients = \"recipients.csv\"\n[verp]\ndomain = \"bounce.sender.test\"\n");
    test::write_file(root_ / "ops-rules.toml", kOpsRules);
    test::write_file(root_ / "kurier.toml", std::string("[queue]\npath = \"queue\"\n[verp]\nsecret = \"") + kSecret +
                                                "\"\n[bounce]\nrules = \"ops-rules.toml\"\n");
  }

  // A DSN for recipient 2 (bob) of the campaign, to its VERP address.
  std::string dsn(queue::CampaignId id, const std::string& crlf) const {
    const std::string verp = Verp(kSecret).address({id, 2}, "bounce.sender.test");
    return "From: MAILER-DAEMON@relay.test" + crlf + "To: " + verp + crlf +
           "Subject: Undelivered Mail Returned to Sender" + crlf + "MIME-Version: 1.0" + crlf +
           "Content-Type: multipart/report; report-type=delivery-status; boundary=B" + crlf + crlf + "--B" + crlf +
           "Content-Type: text/plain" + crlf + crlf + "failed" + crlf + "--B" + crlf +
           "Content-Type: message/delivery-status" + crlf + crlf + "Reporting-MTA: dns; relay.test" + crlf + crlf +
           "Final-Recipient: rfc822; bob@x.test" + crlf + "Action: failed" + crlf + "Status: 5.1.1" + crlf +
           "Diagnostic-Code: smtp; " + kQuotaDiagnostic + crlf + crlf + "--B--" + crlf;
  }

  queue::CampaignId submit(queue::Store& store) const {
    return submit_campaign(store, load_campaign(root_ / "campaign.toml"), 1000).id;
  }

  // bob's late bounce is the ops file's mailboxfull (soft): nothing suppressed.
  static void expect_ops_verdict(queue::Store& store, queue::CampaignId id) {
    auto r = store.recipient({id, 2});
    ASSERT_TRUE(r && r->status.event);
    EXPECT_EQ(r->status.event->kind, queue::EventKind::late_bounce);
    EXPECT_EQ(r->status.event->reason, "mailboxfull") << "the ops rules file was not used";
    EXPECT_EQ(r->status.event->category, "soft");
    EXPECT_FALSE(store.suppression("bob@x.test")) << "a full mailbox is not a reason to suppress";
  }

  test::TempDir dir_;
  fs::path root_;
};

TEST_F(BounceRulesConfig, BuiltInRulesAloneCallTheProviderCodeAnUnknownUser) {
  // The premise of the tests below: without the ops file the verdict differs.
  EXPECT_EQ(bounce::Rules::builtin().classify_status("5.1.1", std::string("smtp; ") + kQuotaDiagnostic).reason,
            "userunknown");
  EXPECT_EQ(classify_reply(550, "5.1.1", "<bob@x.test>: ACME-Q17 account parked").reason, "userunknown");
}

TEST_F(BounceRulesConfig, ConfigLoadsTheOpsFileAndDeliveryClassifiesWithIt) {
  Config config = load_config(root_ / "kurier.toml");
  EXPECT_EQ(config.bounce.rules_file, root_ / "ops-rules.toml") << "resolved against the config's directory";
  ASSERT_TRUE(config.bounce.rules);
  const bounce::Rules& rules = bounce_rules_or_builtin(config);
  Classification c = classify_reply(550, "5.1.1", "<bob@x.test>: ACME-Q17 account parked", rules);
  EXPECT_EQ(c.disposition, Disposition::bounced);
  EXPECT_EQ(c.reason, "mailboxfull");
  EXPECT_EQ(bounce::to_string(c.category), "soft");
  // The built-in rules still answer everything the ops file does not know.
  EXPECT_EQ(classify_reply(550, "5.1.1", "<x@y.test>: Recipient address rejected: User unknown", rules).reason,
            "userunknown");
  EXPECT_EQ(classify_reply(452, "4.2.2", "Mailbox full", rules).reason, "mailboxfull");

  Config defaults;
  EXPECT_EQ(&bounce_rules_or_builtin(defaults), &bounce::Rules::builtin());
}

TEST_F(BounceRulesConfig, BadRulesFileIsAnInputErrorNamingItsLineAndField) {
  test::write_file(root_ / "ops-rules.toml", "# ops\n[[pattern]]\nreason = \"nosuchreason\"\ncontains = [\"x\"]\n");
  try {
    load_config(root_ / "kurier.toml");
    FAIL() << "no error for a bad rules file";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), (root_ / "ops-rules.toml").string()) << e.what();
    EXPECT_GT(e.line(), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("reason"), std::string::npos) << e.what();
  }
  test::write_file(root_ / "kurier.toml", "[verp]\nsecret = \"s\"\n[bounce]\nrules = \"missing.toml\"\n");
  try {
    load_config(root_ / "kurier.toml");
    FAIL() << "no error for a missing rules file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.toml"), std::string::npos) << e.what();
  }
}

TEST_F(BounceRulesConfig, ListenerClassifiesWithTheOpsRules) {
  auto store = queue::open_rocksdb_store((root_ / "queue").string());
  const auto id = submit(*store);
  Config config = load_config(root_ / "kurier.toml");
  BounceListener listener(*store, config, "127.0.0.1:0");
  listener.start();
  const std::string verp = Verp(kSecret).address({id, 2}, "bounce.sender.test");
  test::write_file(root_ / "dsn.eml", dsn(id, "\r\n"));
  const std::string script =
      "import smtplib, sys\n"
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)\n"
      "refused = s.sendmail('', [sys.argv[2]], open(sys.argv[3], 'rb').read())\n"
      "s.quit()\n"
      "print(len(refused))\n";
  auto r = test::run({kPython, "-c", script, std::to_string(listener.port()), verp, (root_ / "dsn.eml").string()},
                     std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0\n");
  listener.stop();
  expect_ops_verdict(*store, id);
}

TEST_F(BounceRulesConfig, IngestClassifiesWithTheOpsRules) {
  queue::CampaignId id;
  {
    auto store = queue::open_rocksdb_store((root_ / "queue").string());
    id = submit(*store);
  }  // closed: ingest opens the queue itself
  test::write_file(root_ / "dsn.eml", dsn(id, "\n"));
  IngestOptions options;
  options.paths = {root_ / "dsn.eml"};
  options.config = root_ / "kurier.toml";
  options.json = true;
  testing::internal::CaptureStdout();
  const int rc = bounce_ingest_command(options);
  const std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"matched\":1"), std::string::npos) << out;
  auto store = queue::open_rocksdb_store((root_ / "queue").string());
  expect_ops_verdict(*store, id);
}

}  // namespace
}  // namespace kurier::engine
