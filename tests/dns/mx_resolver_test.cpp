// The c-ares MX resolver against a real dnsmasq (and, for answers dnsmasq cannot
// produce, a scripted UDP server) on 127.0.0.1. Runs the io_context on the test thread;
// every wait is bounded, every process is stopped by PID.
#include "dns/mx_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "common/asio.h"
#include "tests/common/dnsmasq.h"
#include "tests/dns/fake_dns_server.h"

namespace kurier::dns {
namespace {

using namespace std::chrono_literals;
using test::Dnsmasq;
using test::FakeDnsServer;
namespace w = test::dns_wire;

constexpr auto kResolveLimit = 5s;  // far above any answer from loopback

std::vector<std::string> names(const MxResult& r) {
  std::vector<std::string> out;
  for (const auto& h : r.hosts) out.push_back(h.name);
  return out;
}

// A scripted answer to every query: the header alone, with `rcode` and a count of
// `answers` records that do not follow.
FakeDnsServer::Responder header_only(int rcode, std::uint16_t answers) {
  return [=](const std::string& q) -> std::optional<std::string> { return w::reply_header(q, rcode, answers); };
}

class MxResolverTest : public ::testing::Test {
 protected:
  ResolverOptions options_for(const std::string& server, std::chrono::milliseconds timeout = 1000ms, int tries = 2) {
    ResolverOptions o;
    o.servers = {server};
    o.timeout = timeout;
    o.tries = tries;
    return o;
  }

  // Resolves `domain` and runs the loop until the callback ran (bounded).
  MxResult resolve(MxResolver& resolver, const std::string& domain) {
    std::optional<MxResult> out;
    resolver.resolve_mx(domain, [&](MxResult r) { out = std::move(r); });
    run_until([&] { return out.has_value(); }, kResolveLimit);
    if (!out) {
      ADD_FAILURE() << "no answer for " << domain << " within the limit";
      return {};
    }
    return *out;
  }

  // A resolver of its own, asked once for `domain` and destroyed after the answer.
  MxResult resolve_once(const ResolverOptions& options, const std::string& domain) {
    auto resolver = make_cares_resolver(io_, options);
    return resolve(*resolver, domain);
  }

  // The same against a scripted server that answers with `responder` (one try of
  // 300 ms: loopback answers at once or never).
  MxResult resolve_scripted(FakeDnsServer::Responder responder, const std::string& domain) {
    FakeDnsServer fake(std::move(responder));
    return resolve_once(options_for(fake.server(), 300ms, 1), domain);
  }

  template <typename Pred>
  void run_until(Pred done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_for(20ms);
    }
  }

  void run_for(std::chrono::milliseconds d) {
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_for(10ms);
    }
  }

  asio::io_context io_;
};

// A UDP socket on 127.0.0.1 that receives queries and never answers (no ICMP either).
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind");
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

TEST_F(MxResolverTest, SortsByPreferenceWithAddressesIpv4First) {
  Dnsmasq dns({"mx-host=a.test,mx1.a.test,20", "mx-host=a.test,mx2.a.test,10", "mx-host=a.test,mx3.a.test,30",
               "host-record=mx1.a.test,127.0.1.1", "host-record=mx2.a.test,127.0.1.2,::1",
               "host-record=mx3.a.test,127.0.1.3", "host-record=mx3.a.test,127.0.1.4"});
  MxResult r = resolve_once(options_for(dns.server()), "a.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  EXPECT_FALSE(r.implicit_mx);
  ASSERT_EQ(names(r), (std::vector<std::string>{"mx2.a.test", "mx1.a.test", "mx3.a.test"}));
  EXPECT_EQ(r.hosts[0].preference, 10);
  EXPECT_EQ(r.hosts[1].preference, 20);
  EXPECT_EQ(r.hosts[2].preference, 30);
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"127.0.1.2", "::1"}));
  EXPECT_EQ(r.hosts[1].addresses, (std::vector<std::string>{"127.0.1.1"}));
  EXPECT_EQ(std::set<std::string>(r.hosts[2].addresses.begin(), r.hosts[2].addresses.end()),
            (std::set<std::string>{"127.0.1.3", "127.0.1.4"}));
}

TEST_F(MxResolverTest, RandomOrderAmongEqualPreferences) {
  Dnsmasq dns({"mx-host=eq.test,mxa.eq.test,10", "mx-host=eq.test,mxb.eq.test,10", "mx-host=eq.test,mxc.eq.test,20",
               "host-record=mxa.eq.test,127.0.1.1", "host-record=mxb.eq.test,127.0.1.2",
               "host-record=mxc.eq.test,127.0.1.3"});
  auto options = options_for(dns.server());
  options.cache = false;
  auto resolver = make_cares_resolver(io_, options);
  // Each order has probability 1/2 per lookup: missing one in 64 tries is a 2^-63 event.
  constexpr int kMaxTries = 64;
  std::set<std::vector<std::string>> seen;
  for (int i = 0; i < kMaxTries && seen.size() < 2; ++i) {
    MxResult r = resolve(*resolver, "eq.test");
    ASSERT_EQ(r.status, Status::ok) << r.detail;
    auto order = names(r);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order[2], "mxc.eq.test");
    seen.insert({order[0], order[1]});
  }
  EXPECT_EQ(seen, (std::set<std::vector<std::string>>{{"mxa.eq.test", "mxb.eq.test"}, {"mxb.eq.test", "mxa.eq.test"}}));
  EXPECT_GE(dns.query_count("MX", "eq.test"), 2);  // cache off: every lookup asked the server
}

TEST_F(MxResolverTest, ImplicitMxFromAOnly) {
  Dnsmasq dns({"host-record=aonly.test,127.0.2.1"});
  MxResult r = resolve_once(options_for(dns.server()), "aonly.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  EXPECT_TRUE(r.implicit_mx);
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].name, "aonly.test");
  EXPECT_EQ(r.hosts[0].preference, 0);
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"127.0.2.1"}));
}

TEST_F(MxResolverTest, ImplicitMxFromAaaaOnly) {
  Dnsmasq dns({"host-record=v6only.test,::2"});
  MxResult r = resolve_once(options_for(dns.server()), "v6only.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  EXPECT_TRUE(r.implicit_mx);
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].name, "v6only.test");
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"::2"}));
}

TEST_F(MxResolverTest, ImplicitMxListsIpv4BeforeIpv6) {
  Dnsmasq dns({"host-record=both.test,::3,127.0.2.2"});
  MxResult r = resolve_once(options_for(dns.server()), "both.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"127.0.2.2", "::3"}));
}

TEST_F(MxResolverTest, NullMxIsPermanent) {
  // RDATA 0000 00: preference 0, exchange "." (RFC 7505).
  Dnsmasq dns({"dns-rr=nullmx.test,15,000000", "host-record=nullmx.test,127.0.2.3"});
  MxResult r = resolve_once(options_for(dns.server()), "nullmx.test");
  EXPECT_EQ(r.status, Status::null_mx) << r.detail;
  EXPECT_TRUE(is_permanent(r.status));
  EXPECT_TRUE(r.hosts.empty());
  EXPECT_EQ(dns.query_count("A", "nullmx.test"), 0);  // no fallback to the A record
}

TEST_F(MxResolverTest, NxdomainIsPermanent) {
  Dnsmasq dns({"host-record=other.test,127.0.2.4"});
  MxResult r = resolve_once(options_for(dns.server()), "nope.test");
  EXPECT_EQ(r.status, Status::nxdomain) << r.detail;
  EXPECT_TRUE(r.hosts.empty());
}

TEST_F(MxResolverTest, NameWithoutMxOrAddressIsNoMailHost) {
  Dnsmasq dns({"txt-record=txtonly.test,\"v=spf1 -all\""});
  MxResult r = resolve_once(options_for(dns.server()), "txtonly.test");
  EXPECT_EQ(r.status, Status::no_mail_host) << r.detail;
  EXPECT_TRUE(r.hosts.empty());
  EXPECT_EQ(dns.query_count("A", "txtonly.test"), 1);
  EXPECT_EQ(dns.query_count("AAAA", "txtonly.test"), 1);
}

TEST_F(MxResolverTest, ServfailIsTemporary) {
  FakeDnsServer upstream([](const std::string& q) -> std::optional<std::string> { return w::reply_header(q, 2, 0); });
  Dnsmasq dns({"server=/broken.test/127.0.0.1#" + std::to_string(upstream.port())});
  MxResult r = resolve_once(options_for(dns.server()), "broken.test");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("SERVFAIL"), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find(dns.server()), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, RefusedIsTemporary) {
  // dnsmasq has no upstream for names outside its local zones and refuses them.
  Dnsmasq dns({"host-record=a.test,127.0.2.5"});
  MxResult r = resolve_once(options_for(dns.server()), "elsewhere.example");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("REFUSED"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, TimeoutIsTemporaryWithinBoundedTime) {
  SilentServer silent;
  auto resolver = make_cares_resolver(io_, options_for(silent.server(), 200ms, 2));
  const auto start = std::chrono::steady_clock::now();
  MxResult r = resolve(*resolver, "slow.test");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("timeout"), std::string::npos) << r.detail;
  // c-ares doubles the per-try timeout on each round: 200 ms + 400 ms.
  EXPECT_GE(elapsed, 500ms);
  EXPECT_LT(elapsed, 2s);
}

TEST_F(MxResolverTest, MalformedAnswerIsTemporary) {
  // Claims one answer record but carries none.
  MxResult r = resolve_scripted(header_only(0, 1), "garbled.test");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("malformed"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, CnameLoopIsTemporary) {
  // dnsmasq refuses to load a CNAME loop, so a scripted server serves one.
  MxResult r = resolve_scripted([](const std::string& q) -> std::optional<std::string> {
    return w::reply_header(q, 0, 2) + w::rr("loop.test", 5, 60, w::encode_name("loop2.test")) +
           w::rr("loop2.test", 5, 60, w::encode_name("loop.test"));
  }, "loop.test");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("CNAME loop"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, TruncatedAnswerWithoutTcpIsTemporary) {
  // TC set over UDP; c-ares retries over TCP, where nothing listens.
  MxResult r = resolve_scripted(
      [](const std::string& q) -> std::optional<std::string> { return w::reply_header(q, 0, 0, 0, 0, true); },
      "big.test");
  EXPECT_EQ(r.status, Status::temporary) << r.detail;
  EXPECT_NE(r.detail.find("connection refused"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, LargeAnswerIsRetriedOverTcpAndHostsAreCapped) {
  // 24 MX records with long names do not fit in 512 bytes of UDP: dnsmasq sets TC and
  // c-ares asks again over TCP, which exercises the write-then-read socket path.
  constexpr int kRecords = 24;
  std::vector<std::string> config;
  for (int i = 0; i < kRecords; ++i) {
    const std::string host = "mail-exchanger-number-" + std::to_string(i) + ".big.test";
    config.push_back("mx-host=big.test," + host + "," + std::to_string(100 + i));
    config.push_back("host-record=" + host + ",127.0.6." + std::to_string(i + 1));
  }
  Dnsmasq dns(config);
  MxResult r = resolve_once(options_for(dns.server()), "big.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(r.hosts.size(), 10u);  // the lowest preferences only
  for (std::size_t i = 0; i < r.hosts.size(); ++i) {
    EXPECT_EQ(r.hosts[i].name, "mail-exchanger-number-" + std::to_string(i) + ".big.test");
    EXPECT_EQ(r.hosts[i].addresses, (std::vector<std::string>{"127.0.6." + std::to_string(i + 1)}));
  }
  EXPECT_GE(dns.query_count("MX", "big.test"), 2) << dns.log();  // UDP, then TCP
}

TEST_F(MxResolverTest, FollowsCnameToMx) {
  Dnsmasq dns(
      {"cname=alias.test,real.test", "mx-host=real.test,mx.real.test,10", "host-record=mx.real.test,127.0.1.9"});
  MxResult r = resolve_once(options_for(dns.server()), "alias.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(names(r), (std::vector<std::string>{"mx.real.test"}));
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"127.0.1.9"}));
}

TEST_F(MxResolverTest, QueriesAddressesWhenAdditionalSectionIsEmpty) {
  FakeDnsServer fake([](const std::string& q) -> std::optional<std::string> {
    const std::string name = w::query_name(q);
    switch (w::query_type(q)) {
      case 15:
        return w::reply_header(q, 0, 2) + w::rr(name, 15, 300, w::mx_rdata(10, "mx1.plain.test")) +
               w::rr(name, 15, 300, w::mx_rdata(20, "mx2.plain.test"));
      case 1:
        if (name == "mx1.plain.test") return w::reply_header(q, 0, 1) + w::rr(name, 1, 300, w::a_rdata("127.0.5.1"));
        return w::reply_header(q, 0, 0);
      case 28:
        if (name == "mx2.plain.test") return w::reply_header(q, 0, 1) + w::rr(name, 28, 300, w::aaaa_rdata("fd00::5"));
        return w::reply_header(q, 0, 0);
      default:
        return w::reply_header(q, 4, 0);
    }
  });
  MxResult r = resolve_once(options_for(fake.server()), "Plain.Test.");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(names(r), (std::vector<std::string>{"mx1.plain.test", "mx2.plain.test"}));
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"127.0.5.1"}));
  EXPECT_EQ(r.hosts[1].addresses, (std::vector<std::string>{"fd00::5"}));
  auto seen = fake.queries();
  std::multiset<std::string> got(seen.begin(), seen.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"15 plain.test", "1 mx1.plain.test", "28 mx1.plain.test",
                                             "1 mx2.plain.test", "28 mx2.plain.test"}));
}

TEST_F(MxResolverTest, UnknownRcodeIsTemporary) {
  // ares_query passes rcodes it has no name for (here NOTAUTH) as success.
  MxResult r = resolve_scripted(header_only(9, 0), "odd.test");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("rcode 9"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, FailedHostLookupLeavesThatHostEmpty) {
  MxResult r = resolve_scripted([](const std::string& q) -> std::optional<std::string> {
    const std::string name = w::query_name(q);
    const auto type = w::query_type(q);
    if (type == 15)
      return w::reply_header(q, 0, 2) + w::rr(name, 15, 300, w::mx_rdata(10, "sick.mixed.test")) +
             w::rr(name, 15, 300, w::mx_rdata(20, "well.mixed.test"));
    if (name == "sick.mixed.test") return w::reply_header(q, 2, 0);  // SERVFAIL
    if (type == 1) return w::reply_header(q, 0, 1) + w::rr(name, 1, 300, w::a_rdata("127.0.5.2"));
    return w::reply_header(q, 0, 0);
  }, "mixed.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(names(r), (std::vector<std::string>{"sick.mixed.test", "well.mixed.test"}));
  EXPECT_TRUE(r.hosts[0].addresses.empty());
  EXPECT_EQ(r.hosts[1].addresses, (std::vector<std::string>{"127.0.5.2"}));
  EXPECT_NE(r.detail.find("SERVFAIL"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, ImplicitMxWithFailedAddressLookupIsTemporary) {
  // NODATA for MX, SERVFAIL for A: the domain may well have a mail host.
  MxResult r = resolve_scripted([](const std::string& q) -> std::optional<std::string> {
    return w::reply_header(q, w::query_type(q) == 1 ? 2 : 0, 0);
  }, "flaky.test");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("SERVFAIL for A flaky.test"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, MxHostWithoutAddressKeptWithEmptyAddresses) {
  Dnsmasq dns({"mx-host=part.test,noaddr.part.test,10", "mx-host=part.test,mx.part.test,20",
               "host-record=mx.part.test,127.0.4.1"});
  MxResult r = resolve_once(options_for(dns.server()), "part.test");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(names(r), (std::vector<std::string>{"noaddr.part.test", "mx.part.test"}));
  EXPECT_TRUE(r.hosts[0].addresses.empty());
  EXPECT_EQ(r.hosts[1].addresses, (std::vector<std::string>{"127.0.4.1"}));
}

TEST_F(MxResolverTest, NoMxHostWithAddressIsTemporary) {
  Dnsmasq dns({"mx-host=ghost.test,mx.ghost.test,10", "mx-host=ghost.test,mx2.ghost.test,20"});
  MxResult r = resolve_once(options_for(dns.server()), "ghost.test");
  EXPECT_EQ(r.status, Status::temporary);
  EXPECT_NE(r.detail.find("address"), std::string::npos) << r.detail;
}

TEST_F(MxResolverTest, NormalizesCaseAndTrailingDot) {
  Dnsmasq dns({"mx-host=case.test,MX1.Case.Test,10", "host-record=mx1.case.test,127.0.1.7"});
  auto resolver = make_cares_resolver(io_, options_for(dns.server()));
  MxResult r = resolve(*resolver, "CASE.Test.");
  ASSERT_EQ(r.status, Status::ok) << r.detail;
  ASSERT_EQ(names(r), (std::vector<std::string>{"mx1.case.test"}));
  EXPECT_EQ(r.hosts[0].addresses, (std::vector<std::string>{"127.0.1.7"}));
  // Same cache entry for every spelling.
  MxResult again = resolve(*resolver, "case.test");
  EXPECT_EQ(names(again), names(r));
  EXPECT_EQ(dns.query_count("MX", "case.test") + dns.query_count("MX", "CASE.Test"), 1);
}

TEST_F(MxResolverTest, InvalidDomainIsPermanentWithoutQuery) {
  SilentServer silent;
  auto resolver = make_cares_resolver(io_, options_for(silent.server(), 200ms, 1));
  for (const std::string& bad : std::vector<std::string>{"", ".", "a..test", std::string(64, 'x') + ".test"}) {
    MxResult r = resolve(*resolver, bad);
    EXPECT_EQ(r.status, Status::nxdomain) << bad;
    EXPECT_NE(r.detail.find("invalid"), std::string::npos) << r.detail;
  }
}

TEST_F(MxResolverTest, AnswersComeFromCacheAfterServerStops) {
  Dnsmasq dns({"mx-host=c.test,mx1.c.test,10", "mx-host=c.test,mx2.c.test,20", "host-record=mx1.c.test,127.0.1.1",
               "host-record=mx2.c.test,127.0.1.2"});
  auto resolver = make_cares_resolver(io_, options_for(dns.server(), 200ms, 1));
  MxResult first = resolve(*resolver, "c.test");
  ASSERT_EQ(first.status, Status::ok) << first.detail;
  dns.stop();
  ASSERT_EQ(dns.pid(), -1);
  MxResult second = resolve(*resolver, "c.test");
  ASSERT_EQ(second.status, Status::ok) << second.detail;
  EXPECT_EQ(names(second), names(first));
  EXPECT_EQ(second.hosts[0].addresses, first.hosts[0].addresses);
  EXPECT_EQ(second.hosts[1].addresses, first.hosts[1].addresses);

  auto options = options_for(dns.server(), 200ms, 1);
  options.cache = false;
  auto uncached = make_cares_resolver(io_, options);
  MxResult third = resolve(*uncached, "c.test");
  EXPECT_EQ(third.status, Status::temporary) << third.detail;
}

TEST_F(MxResolverTest, TemporaryFailuresAreCached) {
  Dnsmasq dns({"host-record=a.test,127.0.2.5"});
  auto resolver = make_cares_resolver(io_, options_for(dns.server(), 300ms, 1));
  MxResult first = resolve(*resolver, "refused.example");
  ASSERT_EQ(first.status, Status::temporary);
  const int queries = dns.query_count("MX", "refused.example");
  EXPECT_GE(queries, 1);
  MxResult second = resolve(*resolver, "refused.example");
  EXPECT_EQ(second.status, Status::temporary);
  EXPECT_EQ(second.detail, first.detail);
  EXPECT_EQ(dns.query_count("MX", "refused.example"), queries);
}

TEST_F(MxResolverTest, CacheExpiresAfterMinimumTtl) {
  // dnsmasq's local records have TTL 0, so the entry lives for kMinCacheTtl.
  Dnsmasq dns({"mx-host=ttl.test,mx.ttl.test,10", "host-record=mx.ttl.test,127.0.1.1"});
  auto resolver = make_cares_resolver(io_, options_for(dns.server()));
  ASSERT_EQ(resolve(*resolver, "ttl.test").status, Status::ok);
  ASSERT_EQ(resolve(*resolver, "ttl.test").status, Status::ok);
  EXPECT_EQ(dns.query_count("MX", "ttl.test"), 1);
  std::this_thread::sleep_for(ResolverOptions::kMinCacheTtl + 200ms);
  ASSERT_EQ(resolve(*resolver, "ttl.test").status, Status::ok);
  EXPECT_EQ(dns.query_count("MX", "ttl.test"), 2);
}

TEST_F(MxResolverTest, ConcurrentLookupsAreCoalesced) {
  Dnsmasq dns({"mx-host=co.test,mx.co.test,10", "host-record=mx.co.test,127.0.1.1"});
  auto options = options_for(dns.server());
  options.cache = false;  // coalescing must not depend on the cache
  auto resolver = make_cares_resolver(io_, options);
  constexpr int kCallers = 5;
  std::vector<MxResult> results;
  for (int i = 0; i < kCallers; ++i)
    resolver->resolve_mx("co.test", [&](MxResult r) { results.push_back(std::move(r)); });
  run_until([&] { return results.size() == kCallers; }, kResolveLimit);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kCallers));
  for (const auto& r : results) {
    EXPECT_EQ(r.status, Status::ok) << r.detail;
    EXPECT_EQ(names(r), (std::vector<std::string>{"mx.co.test"}));
  }
  EXPECT_EQ(dns.query_count("MX", "co.test"), 1);
  run_for(50ms);
  EXPECT_EQ(results.size(), static_cast<std::size_t>(kCallers));  // each exactly once
}

TEST_F(MxResolverTest, CallbackIsNeverInline) {
  Dnsmasq dns({"mx-host=in.test,mx.in.test,10", "host-record=mx.in.test,127.0.1.1"});
  auto resolver = make_cares_resolver(io_, options_for(dns.server()));
  int calls = 0;
  resolver->resolve_mx("in.test", [&](MxResult) { ++calls; });
  EXPECT_EQ(calls, 0);
  run_until([&] { return calls == 1; }, kResolveLimit);
  ASSERT_EQ(calls, 1);
  resolver->resolve_mx("in.test", [&](MxResult) { ++calls; });  // cache hit
  EXPECT_EQ(calls, 1);
  resolver->resolve_mx("bad..name", [&](MxResult) { ++calls; });  // rejected without a query
  EXPECT_EQ(calls, 1);
  run_until([&] { return calls == 3; }, kResolveLimit);
  EXPECT_EQ(calls, 3);
}

TEST_F(MxResolverTest, DestroyingResolverCancelsOutstandingQueries) {
  SilentServer silent;
  auto resolver = make_cares_resolver(io_, options_for(silent.server(), 100ms, 2));
  int calls = 0;
  resolver->resolve_mx("pending.test", [&](MxResult) { ++calls; });
  resolver->resolve_mx("other.test", [&](MxResult) { ++calls; });
  run_for(50ms);  // queries are on the wire, sockets and timer armed
  resolver.reset();
  run_for(500ms);  // past every c-ares deadline
  EXPECT_EQ(calls, 0);
}

TEST_F(MxResolverTest, DestroyingResolverDropsQueuedCallbacks) {
  Dnsmasq dns({"mx-host=q.test,mx.q.test,10", "host-record=mx.q.test,127.0.1.1"});
  auto resolver = make_cares_resolver(io_, options_for(dns.server()));
  int calls = 0;
  ASSERT_EQ(resolve(*resolver, "q.test").status, Status::ok);
  resolver->resolve_mx("q.test", [&](MxResult) { ++calls; });  // cache hit: posted, not yet run
  resolver.reset();
  run_for(50ms);
  EXPECT_EQ(calls, 0);
}

TEST_F(MxResolverTest, RejectsBadServerString) {
  ResolverOptions o;
  o.servers = {"not-an-address"};
  EXPECT_THROW(make_cares_resolver(io_, o), std::runtime_error);
  o.servers = {"127.0.0.1:53,127.0.0.2:53"};
  EXPECT_THROW(make_cares_resolver(io_, o), std::runtime_error);
}

}  // namespace
}  // namespace kurier::dns
