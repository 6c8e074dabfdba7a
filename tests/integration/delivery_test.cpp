// End-to-end delivery (issue: delivery core): the real `kurier send` against real
// dnsmasq and real SMTP peers (kurier-sink, Postfix's smtp-sink) on 127.0.2.x /
// 127.0.3.x. A 2,000-recipient campaign over 11 domains must end with every
// recipient in the state the sink scripts dictate, the sinks must have received
// exactly the delivered messages, byte for byte, and every Return-Path must decode
// to its recipient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/core/verp.h"
#include "engine/events/event_reader.h"
#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::ChildProcess;
using test::TempDir;

constexpr int kRecipients = 2000;
constexpr const char* kSecret = "integration-secret";

// What the scripts and DNS make of each recipient.
struct Expectation {
  std::string state;   // delivered, bounced, expired
  std::string reason;  // for bounced / expired
};

struct Row {
  std::string email;
  std::string first_name;
  Expectation expected;
  std::string domain;
};

std::string crlf(const std::string& lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// The body after the header block, as the template defines it, independently of
// kurier's renderer: LF -> CRLF, the values substituted by plain string replacement.
std::string expected_body(const std::string& first_name, const std::string& long_line) {
  std::string body =
      "Hello " + first_name +
      ",\n"
      "\n"
      ".a line starting with a dot\n"
      "..two dots\n"
      ".\n"
      "Grüße, naïve café — 8-bit UTF-8 text\n" +
      long_line + "\n" + "bye\n";
  return crlf(body);
}

std::string read(const fs::path& p) { return test::read_file(p); }

class DeliveryIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::find_program("dnsmasq").empty() || test::find_program("smtp-sink").empty())
      FAIL() << "dnsmasq and Postfix's smtp-sink are required (scripts/install-deps.sh)";
  }
};

TEST_F(DeliveryIntegration, TwoThousandRecipientsEndInTheStatesTheSinksDictate) {
  TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t smtp_port = test::free_tcp_port();

  // --- DNS: 11 domains.
  std::vector<std::string> zone = {
      "mx-host=d01.test,mx.d01.test,10",  "host-record=mx.d01.test,127.0.2.1",
      "mx-host=d02.test,mx.d02.test,10",  "host-record=mx.d02.test,127.0.2.2",
      "mx-host=d03.test,mx.d03.test,10",  "host-record=mx.d03.test,127.0.2.3",
      // d04: the primary MX refuses connections (nothing listens on 127.0.2.40).
      "mx-host=d04.test,mx1.d04.test,10", "host-record=mx1.d04.test,127.0.2.40",
      "mx-host=d04.test,mx2.d04.test,20", "host-record=mx2.d04.test,127.0.2.4",
      // d05: no MX, only an A record (implicit MX).
      "host-record=d05.test,127.0.2.5",
      // d06: null MX (RFC 7505).
      "dns-rr=d06.test,15,000000",
      // d07: NXDOMAIN (not configured).
      // d08: Postfix's smtp-sink.
      "mx-host=d08.test,mx.d08.test,10",  "host-record=mx.d08.test,127.0.3.1",
      // d09: two MX hosts of equal preference.
      "mx-host=d09.test,mx1.d09.test,10", "host-record=mx1.d09.test,127.0.2.6",
      "mx-host=d09.test,mx2.d09.test,10", "host-record=mx2.d09.test,127.0.2.7",
      // d10: a sink that says 421 after 7 messages on a connection.
      "mx-host=d10.test,mx.d10.test,10",  "host-record=mx.d10.test,127.0.2.8",
      "mx-host=d11.test,mx.d11.test,5",   "host-record=mx.d11.test,127.0.2.9",
      "local=/test/",
  };
  test::Dnsmasq dns(zone);

  // --- Sinks.
  test::write_file(root / "sink.toml", R"(
[[rule]]
stage = "rcpt"
match = "unknown*"
reply = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
[[rule]]
stage = "rcpt"
match = "grey*"
times = 1
reply = "451 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted for 1 seconds"
[[rule]]
stage = "rcpt"
match = "tempfail*"
reply = "452 4.2.2 <{rcpt}>: Mailbox full, try later"
[[rule]]
stage = "message"
match = "spammy*"
reply = "554 5.7.1 Message rejected as spam"
)");
  test::write_file(root / "sink421.toml", "max_messages_per_connection = 7\n");
  std::vector<std::string> sink_args = {test::binary("kurier-sink").string(), "--script", (root / "sink.toml").string(),
                                        "--store", (root / "mail").string(), "--stats",
                                        (root / "stats.json").string()};
  for (const char* ip : {"127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4", "127.0.2.5", "127.0.2.6", "127.0.2.7",
                         "127.0.2.9"}) {
    sink_args.push_back("--listen");
    sink_args.push_back(std::string(ip) + ":" + std::to_string(smtp_port));
  }
  ChildProcess sink(sink_args, root / "sink.log");
  ChildProcess sink421({test::binary("kurier-sink").string(), "--script", (root / "sink421.toml").string(), "--store",
                        (root / "mail421").string(), "--stats", (root / "stats421.json").string(), "--listen",
                        "127.0.2.8:" + std::to_string(smtp_port)},
                       root / "sink421.log");
  fs::create_directories(root / "smtp-sink");
  ChildProcess postfix_sink({test::find_program("smtp-sink").string(), "-u", "root", "-d",
                             (root / "smtp-sink" / "%H%M%S.").string(), "127.0.3.1:" + std::to_string(smtp_port),
                             "256"},
                            root / "smtp-sink.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.2.1", smtp_port, std::chrono::seconds(10)));
  ASSERT_TRUE(test::wait_for_tcp("127.0.2.8", smtp_port, std::chrono::seconds(10)));
  ASSERT_TRUE(test::wait_for_tcp("127.0.3.1", smtp_port, std::chrono::seconds(10)));

  // --- The campaign.
  const std::string long_line(990, 'x');
  test::write_file(root / "template.eml",
                   "From: Integration <news@sender.test>\n"
                   "To: {{first_name}} <{{email}}>\n"
                   "Subject: Hello {{first_name}}\n"
                   "MIME-Version: 1.0\n"
                   "Content-Type: text/plain; charset=utf-8\n"
                   "Content-Transfer-Encoding: 8bit\n"
                   "\n"
                   "Hello {{first_name}},\n"
                   "\n"
                   ".a line starting with a dot\n"
                   "..two dots\n"
                   ".\n"
                   "Grüße, naïve café — 8-bit UTF-8 text\n" +
                       long_line + "\n" + "bye\n");
  const std::vector<std::string> domains = {"d01.test", "d02.test", "d03.test", "d04.test", "d05.test", "d06.test",
                                            "d07.test", "d08.test", "d09.test", "d10.test", "d11.test"};
  std::vector<Row> rows;
  std::ostringstream csv;
  csv << "email,first_name\n";
  for (int i = 0; i < kRecipients; ++i) {
    Row row;
    row.domain = domains[static_cast<std::size_t>(i) % domains.size()];
    std::string local = "user" + std::to_string(i);
    // Postfix's smtp-sink (d08) and the 421 sink (d10) have no recipient rules.
    const bool accepts_all = row.domain == "d08.test" || row.domain == "d10.test";
    if (i % 50 == 3) local = "unknown" + std::to_string(i);
    else if (i % 61 == 5) local = "grey" + std::to_string(i);
    else if (i % 97 == 7) local = "tempfail" + std::to_string(i);
    else if (i % 89 == 9) local = "spammy" + std::to_string(i);
    row.email = local + "@" + row.domain;
    row.first_name = "Name" + std::to_string(i);
    if (row.domain == "d06.test") row.expected = {"bounced", "notaccept"};
    else if (row.domain == "d07.test") row.expected = {"bounced", "hostunknown"};
    else if (accepts_all || local.starts_with("user") || local.starts_with("grey")) row.expected = {"delivered", ""};
    else if (local.starts_with("unknown")) row.expected = {"bounced", "userunknown"};
    else if (local.starts_with("tempfail")) row.expected = {"expired", "expired"};
    else row.expected = {"bounced", "spamdetected"};
    csv << row.email << "," << row.first_name << "\n";
    rows.push_back(row);
  }
  test::write_file(root / "recipients.csv", csv.str());
  test::write_campaign_toml(root / "campaign.toml", "integration", "Integration <news@sender.test>",
                            "recipients.csv", "bounces.sender.test");
  test::write_file(root / "shaping.toml",
                   "[default]\nconnections = 5\nmessages_per_connection = 50\n"
                   "retry = [\"1s\"]\nmax_age = \"4s\"\n");
  test::SendConfig config(dns.server(), smtp_port);
  config.smtp_keys = "helo = \"mta.sender.test\"\n";
  config.verp_secret = kSecret;
  // d06/d07 must reach delivery: this test covers DNS failures there
  // (tests/integration/hygiene_intake_test.cpp covers them at intake).
  config.tables = "[smtp.timeouts]\nconnect_ms = 2000\n[hygiene.policy]\nno_mail_host = \"off\"\n";
  test::write_file(root / "kurier.toml", test::send_config(config));

  const auto kurier = test::binary("kurier").string();
  auto sent = test::send_campaign(root, true, std::chrono::seconds(180));
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  EXPECT_NE(sent.out.find("complete"), std::string::npos) << sent.out;

  // --- Every recipient in the dictated state (kurier report --format csv).
  auto report = test::report_csv(root / "kurier.toml", "integration");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const test::CsvRows csv_rows = test::split_csv(report.out);
  EXPECT_EQ(csv_rows.header, "recipient,state,category,reason,code,enhanced,mx,attempts,last_attempt");
  std::map<std::string, std::vector<std::string>> by_address;
  for (std::size_t r = 0; r < csv_rows.fields.size(); ++r) {
    const auto& cols = csv_rows.fields[r];
    ASSERT_EQ(cols.size(), 9u) << csv_rows.lines[r];
    by_address[cols[0]] = cols;
  }
  ASSERT_EQ(by_address.size(), static_cast<std::size_t>(kRecipients));
  std::map<std::string, int> delivered_per_domain;
  int delivered = 0, mismatches = 0;
  for (const auto& row : rows) {
    const auto& cols = by_address[row.email];
    if (cols[1] != row.expected.state || (!row.expected.reason.empty() && cols[3] != row.expected.reason)) {
      if (++mismatches < 10) ADD_FAILURE() << row.email << ": expected " << row.expected.state << "/" << row.expected.reason
                                           << ", got " << cols[1] << "/" << cols[3] << " (" << cols[4] << " " << cols[5] << ")";
    }
    if (cols[1] == "delivered") {
      ++delivered;
      ++delivered_per_domain[row.domain];
    }
    if (row.email.starts_with("grey") && row.expected.state == "delivered" && row.domain != "d08.test" &&
        row.domain != "d10.test") {
      EXPECT_EQ(cols[7], "2") << row.email;
    }
    if (row.domain == "d04.test" && cols[1] == "delivered") {
      EXPECT_EQ(cols[6], "mx2.d04.test") << row.email;
    }
  }
  EXPECT_EQ(mismatches, 0);
  std::map<std::string, int> states;
  for (const auto& [address, cols] : by_address) ++states[cols[1]];
  std::printf("[ figures  ] %d recipients over %zu domains:", kRecipients, domains.size());
  for (const auto& [state, n] : states) std::printf(" %s %d", state.c_str(), n);
  std::printf("\n");

  // --- kurier send's event log: an intake line per recipient, then one line per
  // recorded attempt (as many as the report's attempts), the last one its final state.
  std::map<std::string, std::vector<std::string>> events_of;
  for (engine::LogPosition p;;) {
    auto batch = engine::read_events(root / "queue" / "events.jsonl", p, 10000);
    for (const auto& line : batch.lines) {
      auto e = nlohmann::json::parse(line);
      events_of[e["recipient"].get<std::string>()].push_back(e["type"].get<std::string>());
    }
    if (batch.lines.empty()) break;
    p = batch.end;
  }
  ASSERT_EQ(events_of.size(), static_cast<std::size_t>(kRecipients));
  for (const auto& [address, cols] : by_address) {
    const auto& types = events_of[address];
    ASSERT_EQ(types.front(), "intake") << address;
    ASSERT_EQ(std::to_string(types.size() - 1), cols[7]) << address << ": one event per attempt";
    ASSERT_EQ(types.back(), cols[1]) << address;
  }

  // --- The sinks received exactly the delivered messages.
  sink.stop();
  sink421.stop();
  postfix_sink.stop();
  std::vector<fs::path> stored;
  for (const char* d : {"mail", "mail421"})
    if (fs::exists(root / d))
      for (const auto& e : fs::recursive_directory_iterator(root / d))
        if (e.is_regular_file() && e.path().extension() == ".eml") stored.push_back(e.path());
  int postfix_count = 0;
  for (const auto& e : fs::directory_iterator(root / "smtp-sink"))
    if (e.is_regular_file()) ++postfix_count;
  EXPECT_EQ(postfix_count, delivered_per_domain["d08.test"]);
  EXPECT_EQ(static_cast<int>(stored.size()) + postfix_count, delivered);
  std::printf("[ figures  ] sinks received %zu (kurier-sink) + %d (smtp-sink) messages; report counts %d delivered\n",
              stored.size(), postfix_count, delivered);
  auto stats421 = nlohmann::json::parse(read(root / "stats421.json"));
  EXPECT_GT(stats421["connections"].get<int>(), delivered_per_domain["d10.test"] / 7 - 1)
      << "the 421 after 7 messages forces new connections";

  // --- Byte-for-byte bodies and Return-Paths that decode to their recipient.
  auto store = queue::open_rocksdb_store((root / "queue").string());
  auto campaign = store->find_campaign("integration");
  ASSERT_TRUE(campaign);
  engine::Verp verp(kSecret);
  std::map<std::string, const Row*> row_of;
  for (const auto& r : rows) row_of[r.email] = &r;
  std::set<std::string> seen;
  for (const auto& path : stored) {
    std::string message = read(path);
    ASSERT_TRUE(message.starts_with("Return-Path: <")) << path;
    auto rp_end = message.find(">\r\n");
    std::string return_path = message.substr(14, rp_end - 14);
    auto rcpt_pos = message.find("X-Sink-Rcpt: ");
    ASSERT_NE(rcpt_pos, std::string::npos);
    auto rcpt_end = message.find("\r\n", rcpt_pos);
    std::string rcpt = message.substr(rcpt_pos + 13, rcpt_end - rcpt_pos - 13);
    if (rcpt.front() == '<') rcpt = rcpt.substr(1, rcpt.size() - 2);
    auto ids = verp.decode_address(return_path);
    ASSERT_TRUE(ids) << return_path;
    EXPECT_EQ(ids->campaign, campaign->id);
    auto recipient = store->recipient({ids->campaign, ids->recipient});
    ASSERT_TRUE(recipient);
    EXPECT_EQ(recipient->address, rcpt) << "Return-Path " << return_path << " decodes to another recipient";
    EXPECT_TRUE(return_path.ends_with("@bounces.sender.test"));
    EXPECT_TRUE(seen.insert(rcpt).second) << "delivered twice: " << rcpt;
    const Row* row = row_of[rcpt];
    ASSERT_NE(row, nullptr) << rcpt;
    std::string original = message.substr(rcpt_end + 2);
    auto split = original.find("\r\n\r\n");
    ASSERT_NE(split, std::string::npos);
    EXPECT_EQ(original.substr(split + 4), expected_body(row->first_name, long_line)) << rcpt;
    const std::string headers = original.substr(0, split + 2);
    EXPECT_NE(headers.find("\r\nTo: " + row->first_name + " <" + rcpt + ">\r\n"), std::string::npos) << headers;
    EXPECT_NE(headers.find("\r\nSubject: Hello " + row->first_name + "\r\n"), std::string::npos) << headers;
    EXPECT_NE(headers.find("Message-ID: <"), std::string::npos);
    EXPECT_NE(headers.find("Date: "), std::string::npos);
  }
  // The attempt log has every reply, e.g. the greylisted first try.
  for (const auto& row : rows) {
    if (!row.email.starts_with("grey") || row.domain == "d08.test" || row.domain == "d10.test" ||
        row.domain == "d06.test" || row.domain == "d07.test")
      continue;
    auto ids = [&]() -> std::optional<queue::RecipientKey> {
      std::optional<queue::RecipientKey> key;
      store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
        if (r.address != row.email) return true;
        key = r.key;
        return false;
      });
      return key;
    }();
    ASSERT_TRUE(ids);
    auto attempts = store->attempts(*ids);
    ASSERT_EQ(attempts.size(), 2u) << row.email;
    EXPECT_EQ(attempts[0].code, 451);
    EXPECT_EQ(attempts[0].enhanced, "4.7.1");
    EXPECT_NE(attempts[0].text.find("Greylisted"), std::string::npos);
    EXPECT_EQ(attempts[1].code, 250);
    break;  // one is enough: the CSV check above covered the states of all
  }
}

TEST_F(DeliveryIntegration, BadInputExitsTwoNamingFileLineAndFieldAndQueuesNothing) {
  TempDir dir;
  const fs::path root = dir.path();
  test::write_file(root / "template.eml", "Subject: Hi {{name}}\n\nHello {{name}}\n");
  test::write_file(root / "campaign.toml",
                   "id = \"bad\"\nfrom = \"a@sender.test\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
  test::write_file(root / "kurier.toml", "[queue]\npath = \"queue\"\n[verp]\nsecret = \"s\"\n");
  const auto kurier = test::binary("kurier").string();
  auto send = [&] {
    return test::run({kurier, "send", (root / "campaign.toml").string(), "--config", (root / "kurier.toml").string(),
                      "--no-progress"});
  };

  // An invalid address is not bad input: list hygiene stores it `suppressed` with
  // reason "syntax: ..." (tests/integration/hygiene_intake_test.cpp).
  test::write_file(root / "recipients.csv", "email,name\na@x.test,A\nb@x.test\n");
  auto r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("recipients.csv:3:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected 2 columns"), std::string::npos) << r.err;

  test::write_file(root / "recipients.csv", "email,name\na@x.test,\"A\r\nBcc: victim@x.test\"\n");
  r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("field 'name'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("header injection"), std::string::npos) << r.err;

  test::write_file(root / "recipients.csv", "email,nom\na@x.test,A\n");
  r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("template.eml:1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("name"), std::string::npos) << r.err;

  test::write_file(root / "campaign.toml",
                   "id = \"bad\"\nfrom = \"a@sender.test\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n");
  r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("campaign.toml: field 'verp.domain'"), std::string::npos) << r.err;

  test::write_file(root / "campaign.toml",
                   "id = \"bad\"\nfrom = \"a@sender.test\"\ntemplate = \"missing.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
  r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.eml"), std::string::npos) << r.err;

  // Nothing was queued by any of the failed attempts.
  auto status = test::run({kurier, "status", "--json", "--config", (root / "kurier.toml").string()});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(nlohmann::json::parse(status.out).size(), 0u) << status.out;
}

}  // namespace
}  // namespace kurier
