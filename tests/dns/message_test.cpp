// DNS response parsing (dns/message.h) on hand-built messages, including hostile ones.
// Pure functions on the test thread; no network.
#include "dns/message.h"

#include <gtest/gtest.h>

#include <limits>

#include "tests/dns/fake_dns_server.h"

namespace kurier::dns::wire {
namespace {

namespace w = test::dns_wire;

std::string make_query(const std::string& name, std::uint16_t type) {
  std::string q = {'\x12', '\x34', '\x01', '\x00', '\x00', '\x01', '\x00', '\x00', '\x00', '\x00', '\x00', '\x00'};
  q += w::encode_name(name);
  q += {static_cast<char>(type >> 8), static_cast<char>(type & 0xff), '\x00', '\x01'};
  return q;
}

bool parse(const std::string& bytes, Message& m, std::string& error) {
  return parse_message(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), m, error);
}

TEST(DnsMessage, ParsesMxWithCompressedNamesAndNullMx) {
  std::string q = make_query("a.test", kTypeMx);
  // Exchange "mx.a.test" written as "mx" + pointer to the question name at offset 12.
  std::string exchange = std::string("\x02mx\xc0\x0c", 5);
  std::string msg = w::reply_header(q, 0, 2) + w::rr("A.Test", kTypeMx, 300, std::string("\x00\x0a", 2) + exchange) +
                    w::rr("a.test", kTypeMx, 0x80000001u, std::string("\x00\x00\x00", 3));
  Message m;
  std::string error;
  ASSERT_TRUE(parse(msg, m, error)) << error;
  EXPECT_EQ(m.id, 0x1234);
  EXPECT_EQ(m.rcode, kRcodeNoError);
  EXPECT_FALSE(m.truncated);
  EXPECT_EQ(m.question, "a.test");
  ASSERT_EQ(m.answers.size(), 2u);
  EXPECT_EQ(m.answers[0].name, "a.test");  // lower-cased
  EXPECT_EQ(m.answers[0].preference, 10);
  EXPECT_EQ(m.answers[0].target, "mx.a.test");
  EXPECT_EQ(m.answers[0].ttl, 300u);
  EXPECT_EQ(m.answers[1].target, "");  // RFC 7505 root exchange
  EXPECT_EQ(m.answers[1].ttl, 0u);     // RFC 2181 §8: top bit set reads as 0
}

TEST(DnsMessage, ParsesAddressesAndSoa) {
  std::string q = make_query("h.test", kTypeA);
  std::string soa = w::encode_name("ns.test") + w::encode_name("admin.test") +
                    std::string("\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x3c", 20);
  std::string msg = w::reply_header(q, 0, 2, 1, 0) + w::rr("h.test", kTypeA, 60, w::a_rdata("192.0.2.1")) +
                    w::rr("h.test", kTypeAaaa, 60, w::aaaa_rdata("2001:db8::1")) + w::rr("test", kTypeSoa, 120, soa);
  Message m;
  std::string error;
  ASSERT_TRUE(parse(msg, m, error)) << error;
  ASSERT_EQ(m.answers.size(), 2u);
  EXPECT_EQ(m.answers[0].address, "192.0.2.1");
  EXPECT_EQ(m.answers[1].address, "2001:db8::1");
  std::uint32_t ttl = 0;
  ASSERT_TRUE(negative_ttl(m, ttl));
  EXPECT_EQ(ttl, 60u);  // min(SOA TTL 120, MINIMUM 60)
}

TEST(DnsMessage, RejectsHostileOrBrokenMessages) {
  std::string q = make_query("a.test", kTypeMx);
  Message m;
  std::string error;
  EXPECT_FALSE(parse(q.substr(0, 11), m, error));           // shorter than a header
  EXPECT_FALSE(parse(w::reply_header(q, 0, 1), m, error));  // answer count lies
  std::string cut = w::reply_header(q, 0, 1) + w::rr("a.test", kTypeMx, 1, std::string("\x00\x0a\x02mx\x00", 6));
  EXPECT_FALSE(parse(cut.substr(0, cut.size() - 2), m, error));                                 // RDATA past the end
  EXPECT_FALSE(parse(w::reply_header(q, 0, 1) + w::rr("a.test", kTypeA, 1, "abc"), m, error));  // A of 3 bytes
  // A compression pointer to itself must not loop.
  std::string self_loop = w::reply_header(q, 0, 1) + std::string("\xc0", 1);
  self_loop += static_cast<char>(self_loop.size() - 1);
  self_loop += std::string("\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x7f\x00\x00\x01", 14);
  EXPECT_FALSE(parse(self_loop, m, error));
  // MX whose exchange overruns its RDATA length.
  EXPECT_FALSE(parse(
      w::reply_header(q, 0, 1) + w::rr("a.test", kTypeMx, 1, std::string("\x00\x0a\x02mx", 5)) + std::string("\x00", 1),
      m, error));
}

TEST(DnsMessage, SkipsOtherTypesAndClasses) {
  std::string q = make_query("a.test", kTypeMx);
  std::string txt = w::rr("a.test", 16, 1,
                          std::string("\x03"
                                      "abc",
                                      4));
  std::string chaos = w::rr("a.test", kTypeA, 1, w::a_rdata("192.0.2.9"));
  chaos[w::encode_name("a.test").size() + 3] = 3;  // class CH
  Message m;
  std::string error;
  ASSERT_TRUE(parse(w::reply_header(q, 0, 2) + txt + chaos, m, error)) << error;
  EXPECT_EQ(m.answers.size(), 1u);  // TXT kept as a bare record, CH dropped
  EXPECT_EQ(m.answers[0].type, 16);
}

TEST(DnsMessage, FollowsCnameChainsAndDetectsLoops) {
  auto cname = [](const std::string& from, const std::string& to, std::uint32_t ttl) {
    Record r;
    r.name = from;
    r.type = kTypeCname;
    r.ttl = ttl;
    r.target = to;
    return r;
  };
  std::string canonical, error;
  std::vector<std::string> chain;
  std::uint32_t ttl = std::numeric_limits<std::uint32_t>::max();
  ASSERT_TRUE(follow_cnames({cname("a", "b", 50), cname("b", "c", 20)}, "a", canonical, chain, ttl, error));
  EXPECT_EQ(canonical, "c");
  EXPECT_EQ(chain, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ttl, 20u);

  chain.clear();
  EXPECT_FALSE(follow_cnames({cname("a", "b", 1), cname("b", "a", 1)}, "a", canonical, chain, ttl, error));
  EXPECT_NE(error.find("loop"), std::string::npos);

  std::vector<Record> long_chain;
  for (int i = 0; i <= kMaxCnameChain; ++i)
    long_chain.push_back(cname("n" + std::to_string(i), "n" + std::to_string(i + 1), 1));
  chain.clear();
  EXPECT_FALSE(follow_cnames(long_chain, "n0", canonical, chain, ttl, error));
  EXPECT_NE(error.find("longer"), std::string::npos);
}

TEST(DnsMessage, NormalizesNames) {
  EXPECT_EQ(normalize_name("MX1.Example.COM."), "mx1.example.com");
  EXPECT_EQ(normalize_name("a.test.."), "a.test");
  EXPECT_EQ(normalize_name("."), "");
}

}  // namespace
}  // namespace kurier::dns::wire
