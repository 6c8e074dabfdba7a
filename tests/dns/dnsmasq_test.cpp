// The test helper kurier::test::Dnsmasq itself: it starts, answers only from its
// config, and is stopped by PID. Test thread; bounded waits.
#include "tests/common/dnsmasq.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>

namespace kurier::test {
namespace {

TEST(Dnsmasq, StartsOnLoopbackAndStopsByPid) {
  pid_t pid = -1;
  {
    Dnsmasq dns({"host-record=h.test,127.0.0.7"});
    EXPECT_GT(dns.port(), 0);
    EXPECT_EQ(dns.server(), "127.0.0.1:" + std::to_string(dns.port()));
    pid = dns.pid();
    ASSERT_GT(pid, 0);
    EXPECT_EQ(::kill(pid, 0), 0);
    EXPECT_NE(dns.log().find("query[A] kurier-ready.test"), std::string::npos);  // the readiness probe
    dns.stop();
    EXPECT_EQ(dns.pid(), -1);
    dns.stop();  // idempotent
  }
  // Reaped, so the PID no longer names our child.
  EXPECT_EQ(::kill(pid, 0), -1);
}

TEST(Dnsmasq, AcceptsItsOwnLocalZoneLines) {
  Dnsmasq dns({"local=/test/", "host-record=h.test,127.0.0.7"});
  const std::string conf = read_file(dns.directory() / "dnsmasq.conf");
  EXPECT_EQ(conf.find("local=/test/"), conf.rfind("local=/test/"));  // written once
  EXPECT_GT(dns.pid(), 0);
}

TEST(Dnsmasq, ThrowsWhenDnsmasqRejectsItsConfig) { EXPECT_THROW(Dnsmasq({"no-such-option=1"}), std::runtime_error); }

}  // namespace
}  // namespace kurier::test
