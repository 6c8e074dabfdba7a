// List hygiene at intake, end to end: the real `kurier send` with a real dnsmasq, a
// real kurier-sink and a real queue. Rejected rows end `suppressed` with the verdict
// as reason and are reported; warned rows are delivered; the intake summary counts
// every verdict; the sink receives exactly the accepted recipients.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;

TEST(HygieneIntake, SendRejectsAtIntakeReportsEveryRowAndDeliversTheRest) {
  if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
  test::TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t smtp_port = test::free_tcp_port();
  test::Dnsmasq dns({"mx-host=ok.test,mx.ok.test,10", "host-record=mx.ok.test,127.0.6.1",
                     "dns-rr=nullmx.test,15,000000"});
  test::ChildProcess sink({test::binary("kurier-sink").string(), "--store", (root / "mail").string(), "--listen",
                           "127.0.6.1:" + std::to_string(smtp_port)},
                          root / "sink.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.6.1", smtp_port, std::chrono::seconds(10)));

  {
    auto store = queue::open_rocksdb_store((root / "queue").string());
    store->suppress({"blocked@ok.test", "complaint", 1});
  }
  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: Hi {{name}}\n\nHello {{name}}\n");
  test::write_campaign_toml(root / "campaign.toml", "hygiene", "News <news@sender.test>");
  test::write_file(root / "recipients.csv",
                   "email,name\n"
                   "anna@ok.test,Anna\n"
                   "ben@ok.test,Ben\n"
                   "ANNA@OK.test,Anna again\n"
                   "broken-address,Broken\n"
                   "spam@ok.test,Trap\n"
                   "info@ok.test,Role\n"
                   "x@nullmx.test,NullMx\n"
                   "y@missing.test,Nxdomain\n"
                   "z@mailinator.com,Disposable\n"
                   "blocked@ok.test,Blocked\n");
  test::SendConfig config(dns.server(), smtp_port);
  config.dns_keys = "timeout_ms = 500\n";
  config.smtp_keys = "helo = \"mta.sender.test\"\n";
  config.shaping = false;
  test::write_file(root / "kurier.toml", test::send_config(config));

  const auto kurier = test::binary("kurier").string();
  auto sent = test::send_campaign(root, true, std::chrono::seconds(60));
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  EXPECT_NE(sent.out.find("kurier: campaign hygiene: 10 recipients, 3 queued, 7 suppressed"), std::string::npos)
      << sent.out;
  EXPECT_NE(sent.out.find("kurier: hygiene: 7 rejected, 1 warned (disposable 1 (reject), duplicate 1 (reject), "
                          "no_mail_host 2 (reject), role 1 (warn), suppressed 1 (reject), syntax 1 (reject), "
                          "trap 1 (reject))"),
            std::string::npos)
      << sent.out;
  EXPECT_NE(sent.out.find("complete"), std::string::npos) << sent.out;

  auto report = test::report_csv(root / "kurier.toml", "hygiene");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  std::map<std::string, std::pair<std::string, std::string>> outcome;  // address -> state, reason
  const test::CsvRows csv_rows = test::split_csv(report.out);
  int rows = 0;
  for (std::size_t r = 0; r < csv_rows.fields.size(); ++r) {
    const auto& cols = csv_rows.fields[r];
    ASSERT_GE(cols.size(), 4u) << csv_rows.lines[r];
    outcome[cols[0]] = {cols[1], cols[3]};
    ++rows;
  }
  EXPECT_EQ(rows, 10) << "every input row is reported";
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(outcome["anna@ok.test"], P("delivered", "delivered"));
  EXPECT_EQ(outcome["ben@ok.test"].first, "delivered");
  EXPECT_EQ(outcome["info@ok.test"].first, "delivered") << "role accounts only warn by default";
  EXPECT_EQ(outcome["ANNA@ok.test"], P("suppressed", "duplicate"));
  EXPECT_EQ(outcome["broken-address"], P("suppressed", "syntax: no '@'"));
  EXPECT_EQ(outcome["spam@ok.test"], P("suppressed", "trap"));
  EXPECT_EQ(outcome["x@nullmx.test"], P("suppressed", "no_mail_host"));
  EXPECT_EQ(outcome["y@missing.test"], P("suppressed", "no_mail_host"));
  EXPECT_EQ(outcome["z@mailinator.com"], P("suppressed", "disposable"));
  EXPECT_EQ(outcome["blocked@ok.test"], P("suppressed", "suppressed: complaint"));

  sink.stop();
  int stored = 0;
  if (fs::exists(root / "mail"))
    for (const auto& e : fs::recursive_directory_iterator(root / "mail"))
      if (e.is_regular_file() && e.path().extension() == ".eml") ++stored;
  EXPECT_EQ(stored, 3) << "the sink received exactly the accepted recipients";
}

}  // namespace
}  // namespace kurier
