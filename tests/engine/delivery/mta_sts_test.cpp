// MTA-STS pieces without the network: the TXT record and policy parsers (RFC 8461
// §3.1, §3.2), MX pattern matching (§4.1), the TLS plan per session, its wording in
// the attempt log, and the per-domain `tls` / [mta_sts] configuration keys.
#include <gtest/gtest.h>

#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "engine/delivery/mta_sts.h"
#include "engine/delivery/shaping/shaping.h"
#include "engine/delivery/tls_policy.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

TEST(StsRecord, ReadsTheIdOfAnStsV1Record) {
  EXPECT_EQ(parse_sts_record("v=STSv1; id=20160831085700Z;"), "20160831085700Z");
  EXPECT_EQ(parse_sts_record("v=STSv1;id=abc"), "abc");
  EXPECT_EQ(parse_sts_record("v=STSv1; id=1; ext=whatever"), "1");
}

TEST(StsRecord, RefusesOtherRecordsAndBadIds) {
  EXPECT_FALSE(parse_sts_record("v=spf1 -all"));
  EXPECT_FALSE(parse_sts_record("id=1; v=STSv1")) << "v must come first";
  EXPECT_FALSE(parse_sts_record("v=STSv1"));
  EXPECT_FALSE(parse_sts_record("v=STSv1; id="));
  EXPECT_FALSE(parse_sts_record("v=STSv1; id=has-dash"));
  EXPECT_FALSE(parse_sts_record("v=STSv1; id=" + std::string(33, 'a'))) << "at most 32 characters";
}

TEST(StsPolicyParser, ReadsEveryField) {
  auto parsed = parse_sts_policy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\n"
      "future_key: ignored\r\n");
  ASSERT_TRUE(parsed.policy) << parsed.error;
  EXPECT_EQ(parsed.policy->mode, StsMode::enforce);
  EXPECT_EQ(parsed.policy->mx, (std::vector<std::string>{"mail.example.com", "*.example.net"}));
  EXPECT_EQ(parsed.policy->max_age, std::chrono::seconds(604800));

  auto testing = parse_sts_policy("version: STSv1\nmode: testing\nmx: mx.a.test\nmax_age: 0\n");
  ASSERT_TRUE(testing.policy) << testing.error;
  EXPECT_EQ(testing.policy->mode, StsMode::testing);

  auto none = parse_sts_policy("version: STSv1\nmode: none\nmax_age: 86400\n");
  ASSERT_TRUE(none.policy) << "mode none needs no mx: " << none.error;
  EXPECT_EQ(none.policy->mode, StsMode::none);
}

TEST(StsPolicyParser, NamesWhatIsWrong) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", "line 1: version must be STSv1"},
      {"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n", "line 2: mode must be enforce, testing or none"},
      {"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -5\n", "line 4: max_age must be an integer 0..31557600"},
      {"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n", "line 4: max_age must be an integer 0..31557600"},
      {"version: STSv1\nmode: enforce\nmx: bad host\nmax_age: 1\n", "line 3: mx must be a host name or \"*.\" and a domain"},
      {"version: STSv1\nmode enforce\n", "line 2: not \"key: value\""},
      {"mode: enforce\nmx: a.test\nmax_age: 1\n", "line 0: version is missing"},
      {"version: STSv1\nmx: a.test\nmax_age: 1\n", "line 0: mode is missing"},
      {"version: STSv1\nmode: enforce\nmx: a.test\n", "line 0: max_age is missing"},
      {"version: STSv1\nmode: enforce\nmax_age: 1\n", "line 0: mx is missing"},
      {"<html>not a policy</html>", "line 1: not \"key: value\""},
  };
  for (const auto& c : cases) {
    auto parsed = parse_sts_policy(c.text);
    EXPECT_FALSE(parsed.policy) << c.text;
    EXPECT_EQ(parsed.error, c.error) << c.text;
  }
}

TEST(StsMxPatterns, WildcardCoversExactlyOneLabel) {
  EXPECT_TRUE(mx_matches("mx1.example.net", "MX1.example.net."));
  EXPECT_FALSE(mx_matches("mx1.example.net", "mx2.example.net"));
  EXPECT_TRUE(mx_matches("*.example.net", "mx1.example.net"));
  EXPECT_FALSE(mx_matches("*.example.net", "example.net"));
  EXPECT_FALSE(mx_matches("*.example.net", "a.b.example.net"));
  EXPECT_FALSE(mx_matches("*.example.net", "mx1.badexample.net"));
  StsPolicy policy;
  policy.mx = {"mail.a.test", "*.b.test"};
  EXPECT_TRUE(mx_allowed(policy, "x.b.test"));
  EXPECT_FALSE(mx_allowed(policy, "mail.c.test"));
}

std::vector<smtp::Target> targets() {
  return {{"mx1.other.test", "127.0.0.1"}, {"mx.a.test", "127.0.0.2"}, {"mx.a.test", "::1"}};
}

StsPolicy policy(StsMode mode) {
  StsPolicy p;
  p.mode = mode;
  p.mx = {"mx.a.test"};
  p.max_age = std::chrono::seconds(3600);
  return p;
}

TEST(TlsPlan, WithoutPolicyUsesTheConfiguredOne) {
  TlsPlan plan = plan_tls(smtp::TlsPolicy::required, std::nullopt, targets());
  EXPECT_EQ(plan.tls, smtp::TlsPolicy::required);
  EXPECT_EQ(plan.cert_check, smtp::CertCheck::none);
  EXPECT_EQ(plan.label, "required");
  EXPECT_EQ(plan.targets.size(), 3u);
  EXPECT_TRUE(plan.refused.empty());
  EXPECT_EQ(plan_tls(smtp::TlsPolicy::opportunistic, policy(StsMode::none), targets()).label, "opportunistic");
}

TEST(TlsPlan, EnforceKeepsListedMxOnlyAndRequiresVerifiedTls) {
  TlsPlan plan = plan_tls(smtp::TlsPolicy::disabled, policy(StsMode::enforce), targets());
  EXPECT_EQ(plan.tls, smtp::TlsPolicy::required) << "enforce overrides a per-domain \"none\"";
  EXPECT_EQ(plan.cert_check, smtp::CertCheck::enforce);
  EXPECT_EQ(plan.label, "mta-sts enforce");
  ASSERT_EQ(plan.targets.size(), 2u);
  EXPECT_EQ(plan.targets[0].address, "127.0.0.2");
  EXPECT_TRUE(plan.refused.empty());

  StsPolicy elsewhere = policy(StsMode::enforce);
  elsewhere.mx = {"*.elsewhere.test"};
  TlsPlan refused = plan_tls(smtp::TlsPolicy::opportunistic, elsewhere, targets());
  EXPECT_TRUE(refused.targets.empty());
  EXPECT_EQ(refused.refused,
            "no MX host matches the MTA-STS policy (MX: mx1.other.test, mx.a.test; policy mx: *.elsewhere.test)");
}

TEST(TlsPlan, TestingDeliversAsUsualAndReportsWhatEnforceWouldRefuse) {
  TlsPlan plan = plan_tls(smtp::TlsPolicy::opportunistic, policy(StsMode::testing), targets());
  EXPECT_EQ(plan.tls, smtp::TlsPolicy::opportunistic);
  EXPECT_EQ(plan.cert_check, smtp::CertCheck::report);
  ASSERT_EQ(plan.targets.size(), 3u);
  EXPECT_EQ(plan.targets[0].host, "mx1.other.test") << "order unchanged";

  smtp::SessionInfo info;
  info.target = {"mx1.other.test", "127.0.0.1"};
  info.tls = true;
  info.tls_protocol = "TLSv1.3";
  info.tls_cipher = "TLS_AES_256_GCM_SHA384";
  info.tls_verify = "hostname mismatch";
  EXPECT_EQ(describe_tls(plan, info),
            "TLSv1.3 TLS_AES_256_GCM_SHA384; policy=mta-sts testing; cert=hostname mismatch; mta-sts testing failure "
            "(enforce would defer): MX mx1.other.test not in policy; certificate: hostname mismatch");

  info.target = {"mx.a.test", "127.0.0.2"};
  info.tls_verify = "verified";
  info.tls_verified = true;
  EXPECT_EQ(describe_tls(plan, info), "TLSv1.3 TLS_AES_256_GCM_SHA384; policy=mta-sts testing; cert=verified");
}

TEST(TlsPlan, DescribesPlaintextSessions) {
  TlsPlan plan = plan_tls(smtp::TlsPolicy::opportunistic, std::nullopt, targets());
  smtp::SessionInfo info;
  EXPECT_EQ(describe_tls(plan, info), "plaintext; policy=opportunistic");
  info.tls_fallback = true;
  EXPECT_EQ(describe_tls(plan, info), "plaintext after failed STARTTLS; policy=opportunistic");
}

TEST(TlsConfig, ShapingBlocksSetTlsPerProviderAndDomain) {
  ShapingRules rules = parse_shaping(R"(
[provider.big]
match_domains = ["big.test"]
tls = "required"
[domain."old.test"]
tls = "none"
[domain."plain.test"]
connections = 2
)",
                                     "shaping.toml");
  EXPECT_FALSE(rules.defaults.tls) << "unset: [smtp] tls applies";
  ASSERT_EQ(rules.providers.size(), 1u);
  EXPECT_EQ(rules.providers[0].limits.tls, smtp::TlsPolicy::required);
  EXPECT_EQ(rules.domains.at("old.test").limits.tls, smtp::TlsPolicy::disabled);
  EXPECT_FALSE(rules.domains.at("plain.test").limits.tls);
  try {
    parse_shaping("[domain.\"x.test\"]\n\ntls = \"always\"\n", "shaping.toml");
    FAIL() << "bad tls value accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("shaping.toml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tls"), std::string::npos) << e.what();
  }
}

TEST(TlsConfig, MtaStsTableIsReadAndChecked) {
  test::TempDir dir;
  test::write_file(dir.path() / "ca.pem", "placeholder\n");
  test::write_file(dir.path() / "kurier.toml",
                   "[mta_sts]\nenabled = false\nport = 8443\nca_file = \"ca.pem\"\ntimeout_ms = 1500\n");
  Config c = load_config(dir.path() / "kurier.toml");
  EXPECT_FALSE(c.mta_sts.enabled);
  EXPECT_EQ(c.mta_sts.port, 8443);
  EXPECT_EQ(c.mta_sts.ca_file, (dir.path() / "ca.pem").string());
  EXPECT_EQ(c.mta_sts.timeout.count(), 1500);
  EXPECT_TRUE(Config{}.mta_sts.enabled) << "published policies are honoured by default";

  test::write_file(dir.path() / "bad.toml", "[mta_sts]\nenabled = true\nca_file = \"missing.pem\"\n");
  try {
    load_config(dir.path() / "bad.toml");
    FAIL() << "missing ca_file accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("mta_sts.ca_file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.toml"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kurier::engine
