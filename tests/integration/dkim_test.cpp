// DKIM end to end: `kurier send` signs with rsa-sha256 and ed25519-sha256 (dual
// signatures, RFC 8463); every message captured at a kurier-sink verifies with two
// independent verifiers (python3-dkim and Mail::DKIM), the public keys served as TXT
// records by a real dnsmasq. Bad keys are refused at submission (exit 2).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "dkim/signer.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using test::ChildProcess;

// dnsmasq wants a TXT value longer than 255 bytes as several quoted strings.
std::string txt_record_line(const std::string& name, const std::string& value) {
  std::string line = "txt-record=" + name;
  for (std::size_t i = 0; i < value.size(); i += 255) line += ",\"" + value.substr(i, 255) + "\"";
  return line;
}

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {test::find_program("openssl").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = test::run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

class DkimIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    openssl({"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", (root_ / "rsa.pem").string()});
    openssl({"genpkey", "-algorithm", "ed25519", "-out", (root_ / "ed.pem").string()});
    test::write_file(root_ / "template.eml",
                     "From: News <news@sender.test>\n"
                     "To: {{name}} <{{email}}>\n"
                     "Subject: Grüße {{name}}\n"
                     "MIME-Version: 1.0\n"
                     "Content-Type: text/plain; charset=utf-8\n"
                     "List-Unsubscribe: <mailto:unsub@sender.test?subject={{email}}>\n"
                     "\n"
                     "Hello {{name}},\n"
                     ".a line with a leading dot\n"
                     "8-bit: naïve café, Köln\n" +
                         std::string(990, 'L') + "\n" +
                         "trailing blank lines follow\n\n\n\n");
    std::ostringstream csv;
    csv << "email,name\n";
    for (int i = 0; i < 40; ++i) csv << "u" << i << "@dk" << (i % 2) << ".test,Näme" << i << "\n";
    test::write_file(root_ / "recipients.csv", csv.str());
  }

  void write_campaign(const std::string& dkim_blocks) {
    test::write_file(root_ / "campaign.toml",
                     "id = \"dkim\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                     "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n" +
                         dkim_blocks);
  }

  test::TempDir dir_;
  fs::path root_;
};

TEST_F(DkimIntegration, EveryCapturedMessageVerifiesWithPythonDkimAndMailDkimForBothAlgorithms) {
  const std::uint16_t port = test::free_tcp_port();
  test::Dnsmasq dns({
      "mx-host=dk0.test,mx.dk0.test,10", "host-record=mx.dk0.test,127.0.6.1",
      "mx-host=dk1.test,mx.dk1.test,10", "host-record=mx.dk1.test,127.0.6.2",
      txt_record_line("rsa1._domainkey.sender.test", dkim::public_record(root_ / "rsa.pem")),
      txt_record_line("ed1._domainkey.sender.test", dkim::public_record(root_ / "ed.pem")),
  });
  ChildProcess sink({test::binary("kurier-sink").string(), "--store", (root_ / "mail").string(), "--listen",
                     "127.0.6.1:" + std::to_string(port), "--listen", "127.0.6.2:" + std::to_string(port)},
                    root_ / "sink.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.6.1", port, std::chrono::seconds(10)));
  write_campaign("[[dkim]]\ndomain = \"sender.test\"\nselector = \"rsa1\"\nkey = \"rsa.pem\"\n"
                 "[[dkim]]\ndomain = \"sender.test\"\nselector = \"ed1\"\nkey = \"ed.pem\"\n");
  test::write_file(root_ / "kurier.toml", "[queue]\npath = \"queue\"\n[dns]\nservers = [\"" + dns.server() +
                                              "\"]\n[smtp]\nport = " + std::to_string(port) +
                                              "\n[verp]\nsecret = \"s\"\n");
  auto sent = test::run({test::binary("kurier").string(), "send", (root_ / "campaign.toml").string(), "--config",
                         (root_ / "kurier.toml").string(), "--no-progress"});
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  sink.stop();

  int messages = 0, verified_py = 0, verified_perl = 0;
  for (const auto& e : fs::recursive_directory_iterator(root_ / "mail")) {
    if (e.path().extension() != ".eml") continue;
    ++messages;
    const std::string m = test::read_file(e.path());
    EXPECT_NE(m.find("a=rsa-sha256"), std::string::npos);
    EXPECT_NE(m.find("a=ed25519-sha256"), std::string::npos);
    auto py = test::run({"/usr/bin/python3", test::source_path("tests/dkim/verify_pydkim.py").string(),
                         e.path().string(), std::to_string(dns.port())});
    EXPECT_EQ(py.exit_code, 0) << e.path() << "\n" << py.out << py.err;
    if (py.exit_code == 0) ++verified_py;
    auto perl = test::run({"/usr/bin/perl", test::source_path("tests/dkim/verify_maildkim.pl").string(),
                           e.path().string(), std::to_string(dns.port())});
    EXPECT_EQ(perl.exit_code, 0) << e.path() << "\n" << perl.out << perl.err;
    if (perl.exit_code == 0) ++verified_perl;
  }
  EXPECT_EQ(messages, 40);
  std::printf("[ figures  ] %d messages, each with rsa-sha256 + ed25519-sha256: python3-dkim verified %d, "
              "Mail::DKIM verified %d\n",
              messages, verified_py, verified_perl);

  // The verifiers really check: a changed body fails both.
  auto first = fs::recursive_directory_iterator(root_ / "mail");
  fs::path sample;
  for (const auto& e : first)
    if (e.path().extension() == ".eml") sample = e.path();
  std::string tampered = test::read_file(sample);
  tampered.replace(tampered.find("Hello"), 5, "Jello");
  test::write_file(root_ / "tampered.eml", tampered);
  EXPECT_EQ(test::run({"/usr/bin/python3", test::source_path("tests/dkim/verify_pydkim.py").string(),
                       (root_ / "tampered.eml").string(), std::to_string(dns.port())})
                .exit_code,
            1);
  EXPECT_EQ(test::run({"/usr/bin/perl", test::source_path("tests/dkim/verify_maildkim.pl").string(),
                       (root_ / "tampered.eml").string(), std::to_string(dns.port())})
                .exit_code,
            1);
}

TEST_F(DkimIntegration, BadKeysAreRefusedAtSubmissionNamingTheKey) {
  test::write_file(root_ / "kurier.toml", "[queue]\npath = \"queue\"\n[verp]\nsecret = \"s\"\n");
  auto send = [&] {
    return test::run({test::binary("kurier").string(), "send", (root_ / "campaign.toml").string(), "--config",
                      (root_ / "kurier.toml").string(), "--no-progress"});
  };
  write_campaign("[dkim]\ndomain = \"sender.test\"\nselector = \"k\"\nkey = \"missing.pem\"\n");
  auto r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.pem"), std::string::npos) << r.err;

  test::write_file(root_ / "garbage.pem", "not a key\n");
  write_campaign("[dkim]\ndomain = \"sender.test\"\nselector = \"k\"\nkey = \"garbage.pem\"\n");
  r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("garbage.pem"), std::string::npos) << r.err;

  write_campaign("[dkim]\ndomain = \"other.test\"\nselector = \"k\"\nkey = \"rsa.pem\"\n");
  r = send();
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("dkim"), std::string::npos) << r.err;

  auto status = test::run({test::binary("kurier").string(), "status", "--json", "--config",
                           (root_ / "kurier.toml").string()});
  EXPECT_EQ(status.out, "[]\n") << "nothing was queued";
}

}  // namespace
}  // namespace kurier
