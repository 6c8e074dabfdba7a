// IDN recipient domains at delivery, end to end with the real `kurier send`, dnsmasq
// serving only the A-label zone and a kurier-sink that does NOT offer SMTPUTF8:
//  - "anna@bücher.test" is looked up and routed as xn--bcher-kva.test, RCPT TO and
//    the added To: carry the A-label, and no SMTPUTF8 is needed: delivered;
//  - "jörg@bücher.test" has a UTF-8 local part, which only SMTPUTF8 can carry: the
//    client refuses to send it to this sink (553 5.6.7) instead of mangling it.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;

TEST(IdnRouting, DomainIsRoutedByItsALabelAndNeedsNoSmtputf8) {
  if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
  test::TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t port = test::free_tcp_port();
  // Only the A-label names exist: a lookup of the UTF-8 form would fail.
  test::Dnsmasq dns({"mx-host=xn--bcher-kva.test,mx.xn--bcher-kva.test,10",
                     "host-record=mx.xn--bcher-kva.test,127.0.8.2", "local=/test/"});
  test::write_file(root / "sink.toml", "smtputf8 = false\n");
  test::ChildProcess sink({test::binary("kurier-sink").string(), "--script", (root / "sink.toml").string(), "--store",
                           (root / "mail").string(), "--listen", "127.0.8.2:" + std::to_string(port)},
                          root / "sink.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.8.2", port, std::chrono::seconds(10)));

  test::write_file(root / "recipients.csv", "email\nanna@bücher.test\njörg@bücher.test\n");
  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: Hi\n\nHello\n");
  test::write_file(root / "campaign.toml",
                   "id = \"idn\"\nfrom = \"a@sender.test\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
  test::write_file(root / "kurier.toml", "[queue]\npath = \"queue\"\n[dns]\nservers = [\"" + dns.server() +
                                             "\"]\n[smtp]\nport = " + std::to_string(port) +
                                             "\ntls = \"disabled\"\n[verp]\nsecret = \"s\"\n");
  auto sent = test::run({test::binary("kurier").string(), "send", (root / "campaign.toml").string(), "--config",
                         (root / "kurier.toml").string(), "--wait", "--no-progress"},
                        std::chrono::seconds(60));
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  std::map<std::string, queue::Status> status;
  std::map<std::string, std::vector<queue::Attempt>> attempts;
  {
    auto store = queue::open_rocksdb_store((root / "queue").string());
    auto campaign = store->find_campaign("idn");
    ASSERT_TRUE(campaign);
    store->for_each_recipient(campaign->id, [&](const queue::Recipient& r) {
      status[r.address] = r.status;
      attempts[r.address] = store->attempts(r.key);
      return true;
    });
  }
  ASSERT_EQ(status.size(), 2u);
  const auto& anna = status["anna@bücher.test"];
  EXPECT_EQ(anna.state, queue::State::delivered) << anna.code << " " << anna.enhanced << " " << anna.reason;
  EXPECT_EQ(anna.mx, "mx.xn--bcher-kva.test");

  const auto& jorg = status["jörg@bücher.test"];
  EXPECT_NE(jorg.state, queue::State::delivered);
  ASSERT_FALSE(attempts["jörg@bücher.test"].empty());
  const auto& refused = attempts["jörg@bücher.test"].front();
  EXPECT_EQ(refused.code, 553);
  EXPECT_EQ(refused.enhanced, "5.6.7");
  EXPECT_NE(refused.text.find("SMTPUTF8"), std::string::npos) << refused.text;
  EXPECT_EQ(refused.mx_host, "mx.xn--bcher-kva.test") << "the UTF-8 local part was routed by the A-label too";

  // The sink stored exactly anna's message, addressed with the A-label throughout.
  sink.stop();
  std::vector<std::string> stored;
  if (fs::exists(root / "mail"))
    for (const auto& e : fs::recursive_directory_iterator(root / "mail"))
      if (e.is_regular_file() && e.path().extension() == ".eml") stored.push_back(test::read_file(e.path()));
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_NE(stored[0].find("X-Sink-Rcpt: <anna@xn--bcher-kva.test>"), std::string::npos) << stored[0];
  EXPECT_NE(stored[0].find("To: <anna@xn--bcher-kva.test>"), std::string::npos) << stored[0];
  for (unsigned char c : stored[0]) ASSERT_LT(c, 0x80) << "the message needed no UTF-8:\n" << stored[0];

  // And DNS was asked for the A-label, never for the UTF-8 name.
  const std::string queries = dns.log();
  EXPECT_NE(queries.find("xn--bcher-kva.test"), std::string::npos) << queries;
  EXPECT_EQ(queries.find("bücher"), std::string::npos) << queries;
}

}  // namespace
}  // namespace kurier
