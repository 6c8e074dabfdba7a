// dns::lookup_txt against a real dnsmasq on 127.0.0.1: strings joined per record,
// several records, NXDOMAIN vs NODATA, and failures as TxtStatus::temporary.
// Test thread; every lookup is bounded by its timeout x tries.
#include "dns/txt_lookup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

ResolverOptions at(const std::string& server) {
  ResolverOptions options;
  options.servers = {server};
  options.timeout = std::chrono::milliseconds(1000);
  options.tries = 1;
  return options;
}

TEST(TxtLookup, JoinsTheStringsOfARecordAndReturnsEveryRecord) {
  const std::string long_part(255, 'a');
  test::Dnsmasq dns({"txt-record=k1._domainkey.txt.test,\"v=DKIM1; k=rsa; p=\",\"" + long_part + "\",\"tail\"",
                     "txt-record=two.txt.test,\"first\"", "txt-record=two.txt.test,\"second\",\" part\"",
                     "host-record=host.txt.test,127.0.0.9"});
  TxtResult one = lookup_txt("k1._domainkey.txt.test", at(dns.server()));
  ASSERT_EQ(one.status, TxtStatus::ok) << one.detail;
  EXPECT_THAT(one.records, ElementsAre("v=DKIM1; k=rsa; p=" + long_part + "tail"));

  TxtResult two = lookup_txt("two.txt.test", at(dns.server()));
  ASSERT_EQ(two.status, TxtStatus::ok) << two.detail;
  EXPECT_THAT(two.records, UnorderedElementsAre("first", "second part"));
  EXPECT_EQ(dns.query_count("TXT", "two.txt.test"), 1);
}

TEST(TxtLookup, TellsNxdomainFromANameWithoutTxt) {
  test::Dnsmasq dns({"host-record=host.txt.test,127.0.0.9"});
  TxtResult missing = lookup_txt("nothing.txt.test", at(dns.server()));
  EXPECT_EQ(missing.status, TxtStatus::nxdomain) << missing.detail;
  EXPECT_TRUE(missing.records.empty());
  TxtResult nodata = lookup_txt("host.txt.test", at(dns.server()));
  EXPECT_EQ(nodata.status, TxtStatus::nodata) << nodata.detail;
  EXPECT_TRUE(nodata.records.empty());
}

TEST(TxtLookup, RefusedAndSilentServersAreTemporary) {
  test::Dnsmasq dns({"host-record=host.txt.test,127.0.0.9"});
  // Outside dnsmasq's local zones, with no upstream: REFUSED.
  TxtResult refused = lookup_txt("example.org", at(dns.server()));
  EXPECT_EQ(refused.status, TxtStatus::temporary) << refused.detail;
  EXPECT_THAT(refused.detail, ::testing::HasSubstr(dns.server()));

  // Nobody listens on this port: the lookup ends within timeout x tries.
  const std::string silent = "127.0.0.1:" + std::to_string(test::free_udp_port());
  const auto start = std::chrono::steady_clock::now();
  TxtResult timeout = lookup_txt("k1._domainkey.txt.test", at(silent));
  EXPECT_EQ(timeout.status, TxtStatus::temporary) << timeout.detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(TxtLookup, BadServerStringThrows) {
  EXPECT_THROW(lookup_txt("a.test", at("not a server,x")), std::runtime_error);
}

}  // namespace
}  // namespace kurier::dns
