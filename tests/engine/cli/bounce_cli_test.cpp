// The bounce and suppression commands end to end through the real `kurier` binary on
// a real queue: `kurier bounce ingest` of an mbox and a Maildir, its refusals (an
// unreadable path, a queue held by another process), and `kurier suppress` import /
// export round trip and bad rows. Also split_mbox on its own. Test thread only.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/intake/campaign.h"
#include "engine/bounces/mail_files.h"
#include "engine/core/verp.h"
#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {
namespace fs = std::filesystem;

constexpr const char* kSecret = "cli-test-secret";
constexpr std::int64_t kNow = 1'700'000'000'000;

std::string dsn(const std::string& verp, const std::string& rcpt) {
  return "From: MAILER-DAEMON@relay.test (Mail Delivery System)\n"
         "Subject: Undelivered Mail Returned to Sender\n"
         "To: " + verp + "\n"
         "MIME-Version: 1.0\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\n"
         "\n"
         "--B1\n"
         "Content-Type: text/plain\n"
         "\n"
         "Your message could not be delivered.\n"
         "\n"
         "--B1\n"
         "Content-Type: message/delivery-status\n"
         "\n"
         "Reporting-MTA: dns; relay.test\n"
         "\n"
         "Final-Recipient: rfc822; " + rcpt + "\n"
         "Action: failed\n"
         "Status: 5.1.1\n"
         "Diagnostic-Code: smtp; 550 5.1.1 <" + rcpt + ">: Recipient address rejected: User unknown\n"
         "\n"
         "--B1--\n";
}

std::string arf(const std::string& verp, const std::string& rcpt) {
  return "From: feedback@isp.test\n"
         "Subject: Abuse report\n"
         "To: fbl@sender.test\n"
         "MIME-Version: 1.0\n"
         "Content-Type: multipart/report; report-type=feedback-report; boundary=\"F1\"\n"
         "\n"
         "--F1\n"
         "Content-Type: text/plain\n"
         "\n"
         "This is an abuse report.\n"
         "\n"
         "--F1\n"
         "Content-Type: message/feedback-report\n"
         "\n"
         "Feedback-Type: abuse\n"
         "User-Agent: isp-fbl/1.0\n"
         "Version: 1\n"
         "\n"
         "--F1\n"
         "Content-Type: message/rfc822\n"
         "\n"
         "Return-Path: <" + verp + ">\n"
         "From: News <news@sender.test>\n"
         "To: " + rcpt + "\n"
         "Subject: Hi\n"
         "\n"
         "Hello\n"
         "\n"
         "--F1--\n";
}

std::string autoreply(const std::string& verp) {
  return "From: r2@x.test\nTo: " + verp +
         "\nSubject: Automatische Antwort: Hi\nAuto-Submitted: auto-replied\n\nIch bin bis Montag nicht im Büro.\n";
}

class BounceCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    test::write_file(root_ / "kurier.toml", "[queue]\npath = \"queue\"\n[verp]\nsecret = \"" + std::string(kSecret) +
                                                "\"\n[log]\nlevel = \"error\"\n");
    test::write_file(root_ / "template.eml", "Subject: Hi\n\nHello\n");
    test::write_file(root_ / "campaign.toml",
                     "id = \"c1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                     "recipients = \"recipients.csv\"\n[verp]\ndomain = \"bounce.sender.test\"\n");
    test::write_file(root_ / "recipients.csv", "email\nr1@x.test\nr2@x.test\nr3@x.test\nr4@x.test\n");
    auto store = open();
    campaign_ = submit_campaign(*store, load_campaign(root_ / "campaign.toml"), kNow).id;
  }
  std::unique_ptr<queue::Store> open() { return queue::open_rocksdb_store((root_ / "queue").string()); }
  std::string verp(queue::RecipientId id) const { return Verp(kSecret).address({campaign_, id}, "bounce.sender.test"); }
  test::RunResult kurier(std::vector<std::string> args) {
    args.insert(args.begin(), test::binary("kurier").string());
    args.push_back("--config");
    args.push_back((root_ / "kurier.toml").string());
    return test::run(args, std::chrono::seconds(60));
  }

  test::TempDir dir_;
  fs::path root_;
  queue::CampaignId campaign_ = 0;
};

TEST_F(BounceCli, IngestsAnMboxAndAMaildirAndPrintsTheSummary) {
  // mbox: a DSN, an auto-reply, and junk without a token whose body has a quoted From line.
  test::write_file(root_ / "bounces.mbox", "From MAILER-DAEMON Mon Nov 23 10:00:00 2026\n" + dsn(verp(1), "r1@x.test") +
                                               "\nFrom r2@x.test Mon Nov 23 10:01:00 2026\n" + autoreply(verp(2)) +
                                               "\nFrom spam@x.test Mon Nov 23 10:02:00 2026\n"
                                               "From: spam@x.test\nTo: b+nothing@bounce.sender.test\nSubject: buy\n\n"
                                               ">From here on, cheap\n");
  fs::create_directories(root_ / "Maildir" / "new");
  fs::create_directories(root_ / "Maildir" / "cur");
  fs::create_directories(root_ / "Maildir" / "tmp");
  test::write_file(root_ / "Maildir" / "new" / "1700000000.1.host", arf(verp(3), "r3@x.test"));
  test::write_file(root_ / "Maildir" / "cur" / "1700000000.2.host:2,S", dsn(verp(4), "r4@x.test"));

  auto r = kurier({"bounce", "ingest", (root_ / "bounces.mbox").string(), (root_ / "Maildir").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["messages"], 5);
  EXPECT_EQ(summary["matched"], 4);
  EXPECT_EQ(summary["unmatched"], 1);
  EXPECT_EQ(summary["suppressed"], 3);
  EXPECT_EQ(summary["events"]["late_bounce"], 2);
  EXPECT_EQ(summary["events"]["autoreply"], 1);
  EXPECT_EQ(summary["events"]["complaint"], 1);
  EXPECT_EQ(summary["kinds"]["bounce"], 2);

  auto store = open();
  auto event_of = [&](queue::RecipientId id) {
    auto rec = store->recipient({campaign_, id});
    return rec && rec->status.event ? std::string(queue::to_string(rec->status.event->kind)) + " " +
                                          rec->status.event->reason
                                    : std::string("none");
  };
  EXPECT_EQ(event_of(1), "late_bounce userunknown");
  EXPECT_EQ(event_of(2), "autoreply vacation");
  EXPECT_EQ(event_of(3), "complaint complaint abuse");
  EXPECT_EQ(event_of(4), "late_bounce userunknown");
  EXPECT_EQ(store->suppression("r1@x.test")->reason, "hard-bounce userunknown");
  EXPECT_FALSE(store->suppression("r2@x.test"));
  EXPECT_EQ(store->suppression("r3@x.test")->reason, "complaint abuse");
  EXPECT_TRUE(store->suppression("r4@x.test"));
  store.reset();

  // The text summary names the same figures; the report shows the events.
  r = kurier({"bounce", "ingest", (root_ / "Maildir").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 messages: 2 matched, 0 unmatched"), std::string::npos) << r.out;
  r = kurier({"report", "c1", "--format", "csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "recipient,state,category,reason,code,enhanced,mx,attempts,last_attempt");  // docs/DESIGN.md, stable
  EXPECT_NE(r.out.find("\nr1@x.test,queued,,,,,,0,\n"), std::string::npos) << r.out;
  r = kurier({"report", "c1", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["events"]["late_bounce"], 2);
  EXPECT_EQ(report["recipients"][2]["event"]["kind"], "complaint");
  EXPECT_EQ(report["recipients"][3]["events"].size(), 2u);  // the Maildir was ingested twice
}

TEST_F(BounceCli, IngestRefusesAnUnreadablePathBeforeApplyingAnything) {
  test::write_file(root_ / "one.eml", dsn(verp(1), "r1@x.test"));
  auto r = kurier({"bounce", "ingest", (root_ / "one.eml").string(), (root_ / "missing.mbox").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.mbox"), std::string::npos) << r.err;
  auto store = open();
  EXPECT_FALSE(store->suppression("r1@x.test"));
  EXPECT_TRUE(store->events({campaign_, 1}).empty());
}

// Held by a process that is not a daemon (no API to hand the work to): says so, applies nothing.
TEST_F(BounceCli, IngestSaysWhenAnotherProcessHoldsTheQueue) {
  test::write_file(root_ / "one.eml", dsn(verp(1), "r1@x.test"));
  auto held = open();
  auto r = kurier({"bounce", "ingest", (root_ / "one.eml").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is held by another process (is `kurier serve` running?)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("rocksdb"), std::string::npos) << r.err;  // no RocksDB noise for an expected condition
  EXPECT_FALSE(held->recipient({1, 1})->status.event);
}

TEST_F(BounceCli, SuppressionCsvRoundTripsAndBadRowsImportNothing) {
  test::write_file(root_ / "optout.csv",
                   "Email,Reason,time\nOne@Example.test,robinson,2026-01-31T12:00:00Z\ntwo@example.test,,\n"
                   "\"three@example.test\",\"complaint, by phone\",1700000000123\n");
  auto r = kurier({"suppress", "import", (root_ / "optout.csv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("3 addresses added"), std::string::npos) << r.out;
  r = kurier({"suppress", "export"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string exported = r.out;
  EXPECT_EQ(exported.substr(0, exported.find('\n')), "address,reason,time");
  EXPECT_NE(exported.find("one@example.test,robinson,2026-01-31T12:00:00.000Z\n"), std::string::npos) << exported;
  EXPECT_NE(exported.find("three@example.test,\"complaint, by phone\",2023-11-14T22:13:20.123Z\n"), std::string::npos)
      << exported;
  EXPECT_NE(exported.find("two@example.test,import,"), std::string::npos) << exported;

  // Into a fresh queue and out again: the same file.
  test::write_file(root_ / "kurier2.toml", "[queue]\npath = \"queue2\"\n[verp]\nsecret = \"x\"\n");
  test::write_file(root_ / "exported.csv", exported);
  auto bin = test::binary("kurier").string();
  r = test::run({bin, "suppress", "import", (root_ / "exported.csv").string(), "--config", (root_ / "kurier2.toml").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run({bin, "suppress", "export", "--config", (root_ / "kurier2.toml").string()});
  EXPECT_EQ(r.out, exported);

  // A bad row names file, line and field, and nothing of the file is imported.
  test::write_file(root_ / "bad.csv", "address,reason\nfour@example.test,x\nnot-an-address,y\n");
  r = kurier({"suppress", "import", (root_ / "bad.csv").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.csv:3: field 'address'"), std::string::npos) << r.err;
  test::write_file(root_ / "badtime.csv", "address,time\nfive@example.test,yesterday\n");
  r = kurier({"suppress", "import", (root_ / "badtime.csv").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("badtime.csv:2: field 'time'"), std::string::npos) << r.err;
  test::write_file(root_ / "nocolumn.csv", "name,reason\nfoo,bar\n");
  r = kurier({"suppress", "import", (root_ / "nocolumn.csv").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("field 'address'"), std::string::npos) << r.err;
  {
    auto store = open();
    EXPECT_FALSE(store->suppression("four@example.test"));
    EXPECT_FALSE(store->suppression("five@example.test"));
  }

  // remove, list.
  r = kurier({"suppress", "remove", "TWO@example.test"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = kurier({"suppress", "remove", "two@example.test"});
  EXPECT_EQ(r.exit_code, 2);
  r = kurier({"suppress", "list"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.find("two@example.test"), std::string::npos);
  EXPECT_NE(r.out.find("2 suppressed addresses"), std::string::npos) << r.out;
}

TEST(SplitMbox, SplitsOnFromLinesAfterBlankLinesAndUnquotesFrom) {
  auto messages = split_mbox(
      "From a@x Mon Nov 23 10:00:00 2026\nSubject: one\n\nbody\nFrom inside a paragraph stays\n>From quoted\n"
      ">>From twice\n\nFrom b@x Mon Nov 23 10:00:01 2026\r\nSubject: two\r\n\r\nx\r\n");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0], "Subject: one\n\nbody\nFrom inside a paragraph stays\nFrom quoted\n>From twice\n");
  EXPECT_EQ(messages[1], "Subject: two\r\n\r\nx\r\n");
  EXPECT_TRUE(split_mbox("").empty());
}

}  // namespace
}  // namespace kurier::engine
