// DNS faults end to end (issue 8, part 3): the real `kurier send` resolving through a
// scripted DNS server (tests/dns/fake_dns_server.h, UDP and TCP) that answers each
// domain differently: SERVFAIL, silence (timeouts), truncated answers that are or are
// never answered over TCP, a CNAME loop, NXDOMAIN, null MX. Temporary DNS failures must
// defer, never bounce; NXDOMAIN and null MX bounce. A truncated UDP answer that TCP
// completes is a delivery. The test prints one table row per fault.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "tests/common/process.h"
#include "tests/integration/campaign_files.h"
#include "tests/dns/fake_dns_server.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
namespace w = test::dns_wire;
using namespace std::chrono_literals;

constexpr int kPerFault = 5;
constexpr std::uint16_t kTypeA = 1, kTypeCname = 5, kTypeMx = 15;
constexpr const char* kSinkIp = "127.0.7.1";

struct DnsFault {
  std::string domain;
  std::string name;
  std::string expected;  // state
  std::string reason;    // "" = any
};

const std::vector<DnsFault>& dns_faults() {
  static const std::vector<DnsFault> list = {
      {"ok.test", "plain UDP answer (control)", "delivered", ""},
      {"servfail.test", "SERVFAIL", "deferred", "networkerror"},
      {"silent.test", "no answer at all (timeout)", "deferred", "networkerror"},
      {"tc-tcp.test", "truncated over UDP, answered over TCP", "delivered", ""},
      {"tc-only.test", "truncated over UDP, TCP never answers", "deferred", "networkerror"},
      {"mx-servfail.test", "MX ok, the MX host's A gets SERVFAIL", "deferred", "networkerror"},
      {"cname-loop.test", "CNAME loop", "deferred", "networkerror"},
      {"nx.test", "NXDOMAIN", "bounced", "hostunknown"},
      {"nullmx.test", "null MX (RFC 7505)", "bounced", "notaccept"},
  };
  return list;
}

// The full answers, shared by UDP (unless the domain's fault says otherwise) and TCP.
std::optional<std::string> answer(const std::string& q) {
  const std::string name = w::query_name(q);
  const std::uint16_t type = w::query_type(q);
  auto zone_of = [&](const std::string& suffix) { return name == suffix || name.ends_with("." + suffix); };
  if (zone_of("servfail.test") || name == "mx.mx-servfail.test") return w::reply_header(q, 2, 0);
  if (zone_of("silent.test")) return std::nullopt;
  if (zone_of("nx.test")) return w::reply_header(q, 3, 0);
  if (name == "cname-loop.test" || name == "loop2.cname-loop.test") {
    const std::string other = name == "cname-loop.test" ? "loop2.cname-loop.test" : "cname-loop.test";
    return w::reply_header(q, 0, 2) + w::rr(name, kTypeCname, 60, w::encode_name(other)) +
           w::rr(other, kTypeCname, 60, w::encode_name(name));
  }
  if (name == "nullmx.test" && type == kTypeMx) return w::reply_header(q, 0, 1) + w::rr(name, kTypeMx, 60, w::mx_rdata(0, ""));
  for (const char* domain : {"ok.test", "tc-tcp.test", "tc-only.test", "mx-servfail.test"}) {
    if (name == domain && type == kTypeMx)
      return w::reply_header(q, 0, 1) + w::rr(name, kTypeMx, 60, w::mx_rdata(10, "mx." + name));
    if (name == "mx." + std::string(domain) && type == kTypeA)
      return w::reply_header(q, 0, 1) + w::rr(name, kTypeA, 60, w::a_rdata(kSinkIp));
  }
  return w::reply_header(q, 0, 0);  // NODATA (e.g. AAAA)
}

std::optional<std::string> udp_answer(const std::string& q) {
  const std::string name = w::query_name(q);
  // Truncated: header and question only, TC set; the resolver must ask again over TCP.
  if (name == "tc-tcp.test" || name == "tc-only.test") return w::reply_header(q, 0, 0, 0, 0, true);
  return answer(q);
}

std::optional<std::string> tcp_answer(const std::string& q) {
  if (w::query_name(q) == "tc-only.test") return std::nullopt;  // silence: a timeout
  return answer(q);
}

TEST(DnsFaults, TemporaryFailuresDeferPermanentOnesBounceTruncationRetriesOverTcp) {
  test::TempDir dir;
  const fs::path root = dir.path();
  const std::uint16_t port = test::free_tcp_port();
  test::FakeDnsServer dns(udp_answer, tcp_answer);
  test::ChildProcess sink({test::binary("kurier-sink").string(), "--store", (root / "mail").string(), "--listen",
                           std::string(kSinkIp) + ":" + std::to_string(port)},
                          root / "sink.log");
  ASSERT_TRUE(test::wait_for_tcp(kSinkIp, port, 10s));

  const auto& list = dns_faults();
  std::ostringstream csv;
  csv << "email\n";
  std::map<std::string, std::size_t> fault_of;
  for (std::size_t i = 0; i < list.size(); ++i)
    for (int k = 0; k < kPerFault; ++k) {
      const std::string address = "u" + std::to_string(k) + "@" + list[i].domain;
      fault_of[address] = i;
      csv << address << "\n";
    }
  test::write_file(root / "recipients.csv", csv.str());
  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: dns\n\nHello\n");
  test::write_campaign_toml(root / "campaign.toml", "dns-faults", "a@sender.test");
  test::write_file(root / "shaping.toml", "[default]\nretry = [\"1h\"]\n");
  test::SendConfig config(dns.server(), port);
  config.dns_keys = "timeout_ms = 300\n";
  // Intake hygiene would suppress NXDOMAIN / null MX before sending; here the delivery
  // path's own DNS is under test.
  config.tables = "[smtp.timeouts]\nconnect_ms = 2000\n[hygiene.policy]\nno_mail_host = \"off\"\n";
  test::write_file(root / "kurier.toml", test::send_config(config));

  const auto kurier = test::binary("kurier").string();
  const auto start = std::chrono::steady_clock::now();
  auto sent = test::send_campaign(root, false, std::chrono::seconds(60));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  auto report = test::report_csv(root / "kurier.toml", "dns-faults");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const test::CsvRows csv_rows = test::split_csv(report.out);
  std::vector<std::map<std::string, int>> outcomes(list.size());
  int rows = 0;
  for (std::size_t r = 0; r < csv_rows.fields.size(); ++r) {
    const auto& cols = csv_rows.fields[r];
    const std::string& line = csv_rows.lines[r];
    ASSERT_GE(cols.size(), 4u) << line;
    const std::size_t i = fault_of.at(cols[0]);
    ++rows;
    ++outcomes[i][cols[1]];
    EXPECT_EQ(cols[1], list[i].expected) << list[i].name << ": " << line;
    if (!list[i].reason.empty()) {
      EXPECT_EQ(cols[3], list[i].reason) << list[i].name << ": " << line;
    }
  }
  EXPECT_EQ(rows, static_cast<int>(list.size()) * kPerFault);
  if (::testing::Test::HasFailure()) {
    auto text = test::run({kurier, "report", "dns-faults", "--format", "json", "--config",
                           (root / "kurier.toml").string()});
    ADD_FAILURE() << "attempt log:\n" << text.out << "\nDNS queries:\n" << [&] {
      std::string all;
      for (const auto& q : dns.queries()) all += q + "\n";
      return all;
    }();
  }

  // The TC answers really sent the resolver to TCP, for both truncated domains.
  int tcp_queries = 0;
  for (const auto& q : dns.queries()) {
    if (!q.starts_with("tcp ")) continue;
    ++tcp_queries;
    EXPECT_TRUE(q.ends_with("tc-tcp.test") || q.ends_with("tc-only.test") || q.ends_with("mx.tc-tcp.test")) << q;
  }
  bool tcp_for_answered = false, tcp_for_unanswered = false;
  for (const auto& q : dns.queries()) {
    if (q == "tcp 15 tc-tcp.test") tcp_for_answered = true;
    if (q == "tcp 15 tc-only.test") tcp_for_unanswered = true;
  }
  EXPECT_TRUE(tcp_for_answered);
  EXPECT_TRUE(tcp_for_unanswered);

  std::printf("[ figures  ] DNS faults: %zu cases x %d recipients, %zu queries (%d over TCP), kurier send %.1f s\n",
              list.size(), kPerFault, dns.queries().size(), tcp_queries, seconds);
  std::printf("[ figures  ] %-45s %10s %9s %8s %7s\n", "DNS fault", "recipients", "delivered", "deferred", "bounced");
  for (std::size_t i = 0; i < list.size(); ++i)
    std::printf("[ figures  ] %-45s %10d %9d %8d %7d\n", list[i].name.c_str(), kPerFault, outcomes[i]["delivered"],
                outcomes[i]["deferred"], outcomes[i]["bounced"]);
}

}  // namespace
}  // namespace kurier
