// Operating a running sender (issue 16): with `kurier serve` holding the queue, the CLI's
// report reads beside it and prints what it prints with the daemon stopped; pause stops
// a campaign's transactions within a second while another campaign flows; resume and
// cancel; suspend, unsuspend, retry and purge; and the hard-bounce circuit breaker.
// Real parts: dnsmasq, kurier-sink (storing every message it accepts), `kurier serve`
// and the kurier CLI as child processes, RocksDB on disk; loopback only.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/common/process.h"
#include "tests/integration/browser.h"
#include "tests/integration/daemon_rig.h"

namespace kurier {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// Messages the sink stored for recipients whose local part starts with `prefix`.
int received(const test::DaemonRig& h, const std::string& prefix) {
  int n = 0;
  if (!fs::exists(h.root() / "mail")) return 0;
  for (const auto& entry : fs::recursive_directory_iterator(h.root() / "mail")) {
    if (entry.path().extension() != ".eml") continue;
    const std::string message = test::read_file(entry.path());
    const auto pos = message.find("X-Sink-Rcpt: ");
    if (pos != std::string::npos && message.compare(pos + 14, prefix.size(), prefix) == 0) ++n;  // "<" first
  }
  return n;
}

const json* campaign_row(const json& status, const std::string& id) {
  for (const auto& c : status["campaigns"])
    if (c.value("campaign", "") == id) return &c;
  return nullptr;
}

// recipient -> CSV row of `kurier report ID --format csv`.
std::map<std::string, std::vector<std::string>> report_rows(test::DaemonRig& h, const std::string& id) {
  auto r = h.kurier({"report", id, "--format", "csv"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::vector<std::string>> rows;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    std::vector<std::string> cells;
    std::stringstream cell_stream(line);
    std::string cell;
    while (std::getline(cell_stream, cell, ',')) cells.push_back(cell);
    if (!cells.empty()) rows[cells[0]] = cells;
  }
  return rows;
}

// Lines of the daemon's event log (<queue>/events.jsonl) that contain every one of `parts`.
int event_lines(const test::DaemonRig& h, std::initializer_list<std::string> parts) {
  std::ifstream in(h.queue_dir() / "events.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    bool all = true;
    for (const auto& part : parts) all = all && line.find(part) != std::string::npos;
    n += all;
  }
  return n;
}

// A sink that answers slowly: campaigns take seconds, so there is time to act on them.
test::RigOptions slow_options(std::string subnet, std::string tag) {
  auto options = test::serve_options(std::move(subnet), std::move(tag));
  options.reply_delay_ms = 15;
  options.connections = 1;
  options.messages_per_connection = 20;
  return options;
}

TEST(OperateLiveSender, PauseHoldsOneCampaignWhileAnotherFlowsThenResumeAndCancel) {
  test::DaemonRig h(slow_options("127.0.51", "ctl"));
  h.start_serve();
  ASSERT_EQ(h.submit(h.write_campaign("held", 60, "p")).exit_code, 0);
  ASSERT_EQ(h.submit(h.write_campaign("flowing", 60, "f")).exit_code, 0);
  h.wait_for_sink_messages(8, 20s);

  auto r = h.kurier({"pause", "held", "--reason", "checking the template"});
  ASSERT_EQ(r.exit_code, 0) << r.err << h.serve_log();
  EXPECT_EQ(r.out, "kurier: campaign held paused\n");
  // In-flight transactions finish within the second; after that nothing more arrives.
  std::this_thread::sleep_for(1s);
  const int held_then = received(h, "p"), flowing_then = received(h, "f");
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(received(h, "p"), held_then) << "a paused campaign kept sending";
  EXPECT_GT(received(h, "f"), flowing_then) << "the other campaign stopped too";
  EXPECT_LT(held_then, 240);

  // The pause shows in status (through the daemon), the API and /metrics.
  auto status = h.status();
  const json* row = campaign_row(status, "held");
  ASSERT_NE(row, nullptr) << status.dump();
  EXPECT_EQ((*row)["control"]["state"], "paused");
  EXPECT_EQ((*row)["control"]["reason"], "checking the template");
  EXPECT_EQ((*row)["control"]["by"], "operator");
  EXPECT_NE(h.get("/metrics").find(
                R"(kurier_campaign_held{campaign="held",state="paused",by="operator",reason="checking the template"} 1)"),
            std::string::npos);
  r = h.kurier({"pause", "held"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "kurier: campaign held: the campaign is already in that state\n");

  // Resume: it completes.
  r = h.kurier({"resume", "held"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  h.await_done("held", 240, 90s);
  EXPECT_EQ(received(h, "p"), 240);

  // Cancel a campaign before it is through: the rest ends `cancelled`, none of it sent.
  ASSERT_EQ(h.submit(h.write_campaign("cut", 200, "c")).exit_code, 0);
  while (received(h, "c") < 20) std::this_thread::sleep_for(100ms);
  r = h.kurier({"cancel", "cut", "--reason", "wrong list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kurier: campaign cut cancelled: "), std::string::npos) << r.out;
  h.await_done("cut", 800, 30s);
  std::this_thread::sleep_for(500ms);
  auto rows = report_rows(h, "cut");
  int delivered = 0, cancelled = 0;
  for (const auto& [rcpt, cells] : rows) {
    if (cells[1] == "delivered") ++delivered;
    if (cells[1] == "cancelled") {
      ++cancelled;
      EXPECT_EQ(cells[3], "wrong list") << rcpt;
    }
  }
  EXPECT_EQ(delivered + cancelled, 800);
  EXPECT_GT(cancelled, 400);
  EXPECT_EQ(received(h, "c"), delivered) << "a cancelled recipient was sent";
  EXPECT_EQ(h.kurier({"resume", "cut"}).exit_code, 1);  // cancelled stays cancelled
  // The event log: one `cancelled` line per cancelled recipient, and the operator's actions.
  EXPECT_EQ(event_lines(h, {R"("type":"cancelled")", R"("campaign":"cut")", R"("reason":"wrong list")"}), cancelled);
  EXPECT_EQ(event_lines(h, {R"("type":"admin")", R"("campaign":"held")", R"("text":"pause")",
                            R"x("reason":"checking the template (by operator)")x"}),
            1);
  EXPECT_EQ(event_lines(h, {R"("type":"admin")", R"("campaign":"held")", R"("text":"resume")"}), 1);
  EXPECT_EQ(event_lines(h, {R"("type":"admin")", R"("campaign":"cut")", R"("text":"cancel")"}), 1);

  // The report while serving is the report with the daemon stopped.
  const auto live_text = h.kurier({"report", "cut"});
  const auto live_csv = h.kurier({"report", "held", "--format", "csv"});
  ASSERT_EQ(live_text.exit_code, 0) << live_text.err;
  EXPECT_EQ(live_text.err, "");  // no RocksDB noise
  EXPECT_NE(live_text.out.find(", " + std::to_string(cancelled) + " cancelled"), std::string::npos) << live_text.out;
  h.stop_serve(SIGTERM);
  EXPECT_EQ(h.kurier({"report", "cut"}).out, live_text.out);
  EXPECT_EQ(h.kurier({"report", "held", "--format", "csv"}).out, live_csv.out);
}

// A sink that defers "later*" recipients (450) and rejects "unknown*" ones.
test::RigOptions deferring_options(std::string subnet, std::string tag) {
  auto options = test::serve_options(std::move(subnet), std::move(tag));
  options.sink_rules += R"(
[[rule]]
stage = "rcpt"
match = "later*"
reply = "450 4.2.0 <{rcpt}>: try again later"
)";
  return options;
}

TEST(OperateLiveSender, SuspendHoldsADomainUntilUnsuspendRetryRetriesNowPurgeGivesUp) {
  test::DaemonRig h(deferring_options("127.0.52", "sus"));
  h.start_serve();
  const auto& d = h.domains();  // a-, b-, c-, d-sus.test
  auto r = h.kurier({"suspend", "--domain", d[0], "--for", "30m", "--reason", "provider asked us to wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err << h.serve_log();
  EXPECT_NE(r.out.find("kurier: domain " + d[0] + " suspended until "), std::string::npos) << r.out;
  r = h.kurier({"suspend", "--domain", d[1], "--reason", "closing down"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kurier: domain " + d[1] + " suspended until unsuspended\n");
  EXPECT_EQ(h.kurier({"suspend", "--domain", d[1], "--provider", "x"}).exit_code, 2);  // one scope only

  ASSERT_EQ(h.submit(h.write_campaign("s", 20, "user")).exit_code, 0);
  ASSERT_EQ(h.submit(h.write_campaign("l", 5, "later")).exit_code, 0);
  // c and d: delivered; a and b: held back, nothing sent there.
  h.wait_for_sink_messages(40, 30s);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(received(h, "user"), 40);
  auto status = h.status();
  bool shown = false;
  for (const auto& row : status["domains"])
    if (row.value("domain", "") == d[0]) shown = row.value("suspended_reason", "") == "provider asked us to wait";
  EXPECT_TRUE(shown) << status.dump();
  EXPECT_EQ(status["suspensions"].size(), 2u) << status.dump();

  // Unsuspend a: what it held back is due now and goes out.
  r = h.kurier({"unsuspend", "--domain", d[0]});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kurier: domain " + d[0] + " unsuspended: "), std::string::npos) << r.out;
  h.wait_for_sink_messages(60, 20s);
  EXPECT_EQ(received(h, "user"), 60);
  EXPECT_EQ(h.kurier({"unsuspend", "--domain", d[0]}).exit_code, 1);  // not suspended any more

  // Purge b: its queued recipients end bounced, category other, reason admin.
  r = h.kurier({"purge", "--domain", d[1], "--reason", "domain closed"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kurier: domain " + d[1] + ": 25 queued recipients purged"), std::string::npos) << r.out;
  auto rows = report_rows(h, "s");
  for (int i = 0; i < 20; ++i) {
    const auto& cells = rows["user" + std::to_string(i) + "@" + d[1]];
    ASSERT_GE(cells.size(), 4u);
    EXPECT_EQ(cells[1], "bounced");
    EXPECT_EQ(cells[2], "other");
    EXPECT_EQ(cells[3], "admin");
  }
  EXPECT_EQ(event_lines(h, {R"("type":"bounced")", R"("reason":"admin")", "purged by the operator: domain closed",
                            "@" + d[1]}),
            25);
  EXPECT_EQ(event_lines(h, {R"("type":"admin")", R"("text":"purge")"}), 1);
  EXPECT_EQ(event_lines(h, {R"("type":"admin")", R"("text":"suspend")", "provider asked us to wait"}), 1);

  // Retry: the deferred "later" recipients (a, c, d; b's were purged) are tried again
  // now, not in 5 minutes.
  auto deferred_once = [&] {
    int n = 0;
    for (const auto& [rcpt, cells] : report_rows(h, "l")) n += cells[1] == "deferred" && cells[7] == "1";
    return n;
  };
  for (int i = 0; i < 100 && deferred_once() < 15; ++i) std::this_thread::sleep_for(200ms);
  ASSERT_EQ(deferred_once(), 15);
  r = h.kurier({"retry", "--campaign", "l"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kurier: campaign l: 15 waiting recipients due now\n");
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string attempts;
  while (std::chrono::steady_clock::now() < deadline && attempts != "2") {
    std::this_thread::sleep_for(300ms);
    attempts = report_rows(h, "l").at("later0@" + d[2])[7];
  }
  EXPECT_EQ(attempts, "2");
  EXPECT_EQ(h.kurier({"retry", "--provider", "nosuch"}).exit_code, 2);
}

TEST(OperateLiveSender, TenPercentUnknownRecipientsTripTheBreakerWhichPausesTheCampaign) {
  test::DaemonRig h(slow_options("127.0.53", "brk"));
  h.start_serve();
  // 1,200 recipients, every 10th unknown to the sink (550 5.1.1): over 5 % at 200 answers.
  ASSERT_EQ(h.submit(h.write_campaign_with_unknowns("bad-list", 300, 10)).exit_code, 0);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  json row;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
    auto status = h.status();
    if (const json* c = campaign_row(status, "bad-list"); c && c->contains("control")) {
      row = *c;
      break;
    }
  }
  ASSERT_TRUE(row.contains("control")) << h.serve_log();
  EXPECT_EQ(row["control"]["state"], "paused");
  EXPECT_EQ(row["control"]["by"], "breaker");
  const std::string reason = row["control"]["reason"];
  EXPECT_NE(reason.find("hard-bounce rate 1"), std::string::npos) << reason;  // ~10 %
  EXPECT_NE(reason.find("(limit 5.0% over 200)"), std::string::npos) << reason;
  const std::string metrics = h.get("/metrics");
  EXPECT_NE(metrics.find(R"(kurier_campaign_held{campaign="bad-list",state="paused",by="breaker")"), std::string::npos);
  EXPECT_NE(metrics.find("kurier_breaker_trips_total 1"), std::string::npos);
  EXPECT_EQ(event_lines(h, {R"("type":"admin")", R"("campaign":"bad-list")", R"("text":"pause")", "(by breaker)"}), 1);
  // The dashboard says so too (headless Chromium on the live page).
  const fs::path browser = test::find_program("chromium");
  ASSERT_FALSE(browser.empty()) << "the Debian package 'chromium' is required (scripts/install-deps.sh)";
  auto page = test::chromium(browser, h.root() / "chromium", "http://" + h.http_address() + "/", "1400,900");
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_NE(page.out.find("<tr data-campaign=\"bad-list\"><td class=\"name paused\">"), std::string::npos)
      << page.out;
  EXPECT_NE(page.out.find(reason), std::string::npos) << page.out;
  auto status = h.kurier({"status"});
  EXPECT_NE(status.out.find("held campaigns:\n  bad-list paused by breaker since "), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("hard-bounce rate"), std::string::npos) << status.out;

  // Paused, also across a restart: nothing more goes out. Resumed by the operator: it
  // sends again.
  std::this_thread::sleep_for(1s);
  const auto sent = h.sink_messages();
  h.stop_serve(SIGTERM);
  h.start_serve();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(h.sink_messages(), sent);
  const json restarted = h.status();
  const json* after = campaign_row(restarted, "bad-list");
  ASSERT_NE(after, nullptr);
  EXPECT_EQ((*after)["control"]["by"], "breaker");
  ASSERT_EQ(h.kurier({"resume", "bad-list"}).exit_code, 0);
  h.wait_for_sink_messages(sent + 20, 20s);
  EXPECT_GE(h.sink_messages(), sent + 20);
}

// A late DSN for `rcpt`, addressed to the VERP return path its message carried.
std::string late_dsn(const std::string& verp, const std::string& rcpt) {
  return "From: MAILER-DAEMON@relay.test (Mail Delivery System)\nSubject: Undelivered Mail Returned to Sender\n"
         "To: " + verp + "\nMIME-Version: 1.0\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\n\n"
         "--B1\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
         "--B1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.test\n\n"
         "Final-Recipient: rfc822; " + rcpt + "\nAction: failed\nStatus: 5.1.1\n"
         "Diagnostic-Code: smtp; 550 5.1.1 <" + rcpt + ">: User unknown\n\n--B1--\n";
}

// The suppression list, check and bounce ingest while the daemon holds the queue: the
// same output and exit codes as without it (the daemon runs the changes).
TEST(OperateLiveSender, SuppressCheckAndIngestWorkWhileServing) {
  test::DaemonRig h(test::serve_options("127.0.55", "sup"));
  h.start_serve();
  ASSERT_EQ(h.submit(h.write_campaign("news", 2, "user")).exit_code, 0);
  h.await_done("news", 8, 30s);

  auto r = h.kurier({"suppress", "add", "Someone@Example.test", "--reason", "asked by phone"});
  ASSERT_EQ(r.exit_code, 0) << r.err << h.serve_log();
  EXPECT_EQ(r.out, "kurier: Someone@Example.test suppressed (asked by phone)\n");
  EXPECT_EQ(r.err, "");
  test::write_file(h.root() / "optout.csv", "email,reason\nsomeone@example.test,dup\nother@example.test,robinson\n");
  r = h.kurier({"suppress", "import", (h.root() / "optout.csv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kurier: " + (h.root() / "optout.csv").string() +
                       ": 1 addresses added to the suppression list, 1 already on it\n");
  test::write_file(h.root() / "bad.csv", "email\nnot-an-address\n");
  r = h.kurier({"suppress", "import", (h.root() / "bad.csv").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((h.root() / "bad.csv").string() + ":2: field 'email': not a valid address"), std::string::npos) << r.err;
  r = h.kurier({"suppress", "list"});
  EXPECT_NE(r.out.find("someone@example.test"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 suppressed addresses"), std::string::npos) << r.out;
  r = h.kurier({"check", "--json", "--no-dns", "other@example.test"});
  EXPECT_EQ(r.out, R"({"address":"other@example.test","action":"reject","verdicts":["suppressed"],"suggestion":null})"
                   "\n");
  r = h.kurier({"suppress", "remove", "other@example.test"});
  EXPECT_EQ(r.out, "kurier: other@example.test removed from the suppression list\n");
  r = h.kurier({"suppress", "remove", "other@example.test"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "kurier: other@example.test is not on the suppression list\n");

  // A late bounce for a delivered recipient, ingested through the daemon.
  const std::string rcpt = "user1@" + h.domains()[2];
  std::string verp;
  for (const auto& entry : fs::recursive_directory_iterator(h.root() / "mail")) {
    const std::string message = test::read_file(entry.path());
    if (message.find("X-Sink-Rcpt: <" + rcpt + ">") == std::string::npos) continue;
    const auto at = message.find("Return-Path: <") + 14;
    verp = message.substr(at, message.find('>', at) - at);
  }
  ASSERT_FALSE(verp.empty());
  test::write_file(h.root() / "late.eml", late_dsn(verp, rcpt));
  r = h.kurier({"bounce", "ingest", (h.root() / "late.eml").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kurier: 1 messages: 1 matched, 0 unmatched"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("suppressed: 1 addresses added"), std::string::npos) << r.out;
  EXPECT_NE(h.kurier({"report", "news"}).out.find("late_bounce"), std::string::npos);
  EXPECT_EQ(event_lines(h, {R"("type":"late_bounce")", rcpt}), 1);
  EXPECT_NE(h.kurier({"suppress", "list"}).out.find(rcpt), std::string::npos);

  // The same commands with the daemon stopped print the same.
  h.stop_serve(SIGTERM);
  r = h.kurier({"suppress", "remove", "other@example.test"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "kurier: other@example.test is not on the suppression list\n");
  r = h.kurier({"suppress", "add", "third@example.test", "--reason", "asked by phone"});
  EXPECT_EQ(r.out, "kurier: third@example.test suppressed (asked by phone)\n");
}

// `kurier send` (no daemon) stops when the breaker pauses its campaign, and says why.
TEST(OperateLiveSender, SendStopsWhenTheBreakerPausesItsCampaign) {
  auto options = slow_options("127.0.54", "snd");
  options.extra_config = "[breaker]\nmin_attempts = 20\n";
  test::DaemonRig h(options);
  auto r = h.kurier({"send", h.write_campaign_with_unknowns("half-bad", 100, 2).string(), "--no-progress"}, 120s);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("kurier: campaign half-bad is paused by breaker: hard-bounce rate "), std::string::npos) << r.err;
  std::this_thread::sleep_for(500ms);  // the sink's stats file is rewritten every 200 ms
  EXPECT_LT(h.sink_messages(), 200u);  // stopped well before the end
  auto report = h.kurier({"report", "half-bad"});
  EXPECT_NE(report.out.find("paused by breaker since "), std::string::npos) << report.out;
  // Resumed, the same command goes on (and the breaker, counting afresh, trips again).
  ASSERT_EQ(h.kurier({"resume", "half-bad"}).exit_code, 0);
  const auto before = h.sink_messages();
  r = h.kurier({"send", (h.root() / "half-bad" / "campaign.toml").string(), "--no-progress"}, 120s);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  std::this_thread::sleep_for(500ms);
  EXPECT_GT(h.sink_messages(), before);
}

}  // namespace
}  // namespace kurier
