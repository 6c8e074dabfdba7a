// `kurier dkim keygen` and `kurier dkim check`, run as the built binary: the key file
// and its mode, the printed record, and the check against records served by dnsmasq.
// Each run is a child process with a 60 s limit.
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dkim/detail.h"
#include "dkim/signer.h"
#include "tests/dkim/helpers.h"

namespace kurier::dkim::test {
namespace {

using ::testing::HasSubstr;
using kurier::test::Dnsmasq;

RunResult kurier_cli(std::vector<std::string> args) {
  args.insert(args.begin(), kurier::test::binary("kurier").string());
  return kurier::test::run(args, std::chrono::seconds(60));
}

// The quoted strings of a zone-file record, in order.
std::vector<std::string> record_strings(const std::string& record) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = record.find('"', pos)) != std::string::npos) {
    std::size_t end = record.find('"', pos + 1);
    if (end == std::string::npos) break;
    out.push_back(record.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return out;
}

std::string joined(const std::vector<std::string>& strings) {
  std::string out;
  for (const auto& s : strings) out += s;
  return out;
}

TEST(DkimCli, KeygenWritesA0600KeyAndPrintsItsRecord) {
  kurier::test::TempDir dir;
  struct Case {
    std::string algorithm;
    std::string k;
    std::size_t strings;
  };
  for (const Case& c : {Case{"rsa", "rsa", 2}, Case{"ed25519", "ed25519", 1}}) {
    const fs::path key = dir.path() / (c.algorithm + ".private");
    RunResult r = kurier_cli({"dkim", "keygen", "--domain", "example.test", "--selector", "s1", "--algorithm",
                              c.algorithm, "--out", key.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    struct stat st {};
    ASSERT_EQ(::stat(key.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_THAT(r.err, HasSubstr(key.string()));

    // One line: NAME. IN TXT ( "..." ... ), strings of at most 255 bytes.
    ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_TRUE(r.out.starts_with("s1._domainkey.example.test. IN TXT ( \"")) << r.out;
    EXPECT_TRUE(r.out.ends_with("\" )\n")) << r.out;
    const std::vector<std::string> strings = record_strings(r.out);
    EXPECT_EQ(strings.size(), c.strings);
    for (const auto& s : strings) EXPECT_LE(s.size(), 255u);

    // The record is the key's public half as openssl sees it.
    const std::string value = joined(strings);
    ASSERT_TRUE(value.starts_with("v=DKIM1; k=" + c.k + "; p=")) << value;
    RunResult pub = openssl({"pkey", "-in", key.string(), "-pubout", "-outform", "DER"});
    const auto* der = reinterpret_cast<const unsigned char*>(pub.out.data());
    const std::string expected_p = c.k == "rsa" ? detail::base64(der, pub.out.size())
                                                : detail::base64(der + pub.out.size() - 32, 32);  // raw key: last 32 bytes
    EXPECT_EQ(value.substr(value.find("p=") + 2), expected_p);
    if (c.k == "rsa") {
      EXPECT_THAT(openssl({"pkey", "-in", key.string(), "-noout", "-text"}).out, HasSubstr("2048 bit"));
    }
  }
}

TEST(DkimCli, KeygenRefusesToOverwriteAndRejectsBadInput) {
  kurier::test::TempDir dir;
  const fs::path key = dir.path() / "k.private";
  kurier::test::write_file(key, "precious");
  RunResult r = kurier_cli({"dkim", "keygen", "--domain", "example.test", "--selector", "s1", "--out", key.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("refusing to overwrite"));
  EXPECT_EQ(kurier::test::read_file(key), "precious");

  const fs::path fresh = dir.path() / "fresh.private";
  r = kurier_cli({"dkim", "keygen", "--domain", "bad domain", "--selector", "s1", "--out", fresh.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("'bad domain'"));
  r = kurier_cli({"dkim", "keygen", "--domain", "example.test", "--selector", "s1", "--algorithm", "dsa", "--out",
                  fresh.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("rsa or ed25519"));
  r = kurier_cli({"dkim", "keygen", "--selector", "s1", "--out", fresh.string()});
  EXPECT_EQ(r.exit_code, 2);  // --domain is required
  EXPECT_FALSE(fs::exists(fresh));
}

class DkimCliCheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<kurier::test::TempDir>();
    rsa_ = dir_->path() / "rsa.private";
    ed_ = dir_->path() / "ed.private";
    RunResult a = kurier_cli({"dkim", "keygen", "--domain", kSignDomain, "--selector", "rsa", "--out", rsa_.string()});
    RunResult b = kurier_cli({"dkim", "keygen", "--domain", kSignDomain, "--selector", "ed", "--algorithm", "ed25519",
                              "--out", ed_.string()});
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    dns_ = std::make_unique<Dnsmasq>(std::vector<std::string>{
        dnsmasq_line(a.out),
        dnsmasq_line(b.out),
        txt_record("wrong", public_record(keys().rsa_pkcs8)),  // another RSA key
        txt_record("revoked", "v=DKIM1; k=rsa; p="),
        "host-record=host.sender.test,127.0.0.9",
    });
  }
  static void TearDownTestSuite() {
    dns_.reset();
    dir_.reset();
  }

  static RunResult check(const std::string& selector, const fs::path& key) {
    return kurier_cli({"dkim", "check", "--domain", kSignDomain, "--selector", selector, "--key", key.string(), "--dns",
                       dns_->server()});
  }

  static std::unique_ptr<kurier::test::TempDir> dir_;
  static std::unique_ptr<Dnsmasq> dns_;
  static fs::path rsa_, ed_;
};
std::unique_ptr<kurier::test::TempDir> DkimCliCheck::dir_;
std::unique_ptr<Dnsmasq> DkimCliCheck::dns_;
fs::path DkimCliCheck::rsa_, DkimCliCheck::ed_;

TEST_F(DkimCliCheck, PublishedRecordsOfTheKeysMatch) {
  for (const auto& [selector, key] : {std::pair{"rsa", rsa_}, std::pair{"ed", ed_}}) {
    RunResult r = check(selector, key);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(r.out.starts_with("match: " + std::string(selector) + "._domainkey.sender.test")) << r.out;
  }
  EXPECT_EQ(dns_->query_count("TXT", "rsa._domainkey.sender.test"), 1);
}

TEST_F(DkimCliCheck, AnotherKeyIsAMismatchWithTheRecordToPublish) {
  RunResult r = check("wrong", rsa_);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("mismatch: wrong._domainkey.sender.test: p= is a different public key")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("wrong._domainkey.sender.test. IN TXT ( \"v=DKIM1; k=rsa; p="));
  EXPECT_EQ(joined(record_strings(r.out.substr(r.out.find(". IN TXT")))), public_record(rsa_));

  r = check("ed", rsa_);  // an Ed25519 record for an RSA key
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("k=ed25519 is published, the key is k=rsa"));

  r = check("revoked", rsa_);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("revoked"));
}

TEST_F(DkimCliCheck, NoRecordIsMissing) {
  RunResult r = check("nosuch", ed_);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("missing: no TXT record at nosuch._domainkey.sender.test (NXDOMAIN)")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("nosuch._domainkey.sender.test. IN TXT ( \"v=DKIM1; k=ed25519; p="));

  // The name exists, with an A record only.
  r = kurier_cli({"dkim", "check", "--domain", "sender.test", "--selector", "host", "--key", ed_.string(), "--dns",
                  dns_->server()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("missing:")) << r.out;
}

TEST_F(DkimCliCheck, DnsServersComeFromTheConfig) {
  kurier::test::TempDir dir;
  const fs::path config = dir.path() / "kurier.toml";
  kurier::test::write_file(config, "[dns]\nservers = [\"" + dns_->server() + "\"]\n[verp]\nsecret = \"s\"\n");
  RunResult r = kurier_cli(
      {"dkim", "check", "--domain", kSignDomain, "--selector", "ed", "--key", ed_.string(), "--config", config.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("match:")) << r.out;
}

TEST_F(DkimCliCheck, UnusableKeyIsBadInputAndDnsFailureIsRuntimeFailure) {
  RunResult r = check("rsa", dir_->path() / "missing.private");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing.private: file does not exist"));
  EXPECT_TRUE(r.out.empty());

  // A server that never answers: the check says the lookup failed, exit 1.
  const std::string silent = "127.0.0.1:" + std::to_string(kurier::test::free_udp_port());
  r = kurier_cli(
      {"dkim", "check", "--domain", kSignDomain, "--selector", "rsa", "--key", rsa_.string(), "--dns", silent});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("lookup of rsa._domainkey.sender.test TXT failed"));
}

}  // namespace
}  // namespace kurier::dkim::test
