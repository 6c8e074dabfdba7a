// Signatures checked by two independent verifiers, python3-dkim and Mail::DKIM, that
// fetch the public keys from a real dnsmasq on 127.0.0.1 (TXT records split into
// 255-byte strings). Each verifier run is a child process with a 60 s limit.
#include <gtest/gtest.h>

#include <memory>
#include <tuple>

#include "dkim/signer.h"
#include "tests/dkim/helpers.h"

namespace kurier::dkim::test {
namespace {

using kurier::test::Dnsmasq;

struct MessageCase {
  const char* name;
  std::string header;
  std::string body;
};

const std::vector<MessageCase>& message_cases() {
  static const std::vector<MessageCase> cases = [] {
    const std::string common =
        "From: Sender News <news@sender.test>\n"
        "To: rcpt@example.test\n"
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
        "Message-ID: <m1@sender.test>\n"
        "MIME-Version: 1.0\n";
    std::string long_lines;
    for (int i = 0; i < 5; ++i) long_lines += std::string(990, static_cast<char>('a' + i)) + "\n";
    long_lines += std::string(400, 'x') + "   \t  " + std::string(400, 'y') + "\n";
    return std::vector<MessageCase>{
        {"plain", common + "Subject: plain\nContent-Type: text/plain; charset=us-ascii",
         "Hello,\nthis is a plain message.\n"},
        {"trailing_blank_lines", common + "Subject: trailing", "text\n\n  \n\t\n\n\n"},
        {"long_lines", common + "Subject: long lines", long_lines},
        {"utf8_body",
         common + "Subject: utf8\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit",
         "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln \xe2\x80\x94 \xe2\x98\x83\n\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\n"},
        {"dot_lines", common + "Subject: dots", ".\n..\n.leading dot\n...three\nend\n.\n"},
        {"encoded_word_header",
         common +
             "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4gLSBlaW4gc2VociBsYW5nZXIgQmV0cmVmZiBt?=\n"
             " =?UTF-8?B?aXQgVW1sYXV0ZW4gw6TDtsO8?=\n"
             "List-Unsubscribe: <mailto:u+abc@sender.test>,\n <https://sender.test/u/abc>\n"
             "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
             "Feedback-ID: c1:news:kurier\n"
             "Content-Type: text/plain; charset=utf-8",
         "body\n"},
    };
  }();
  return cases;
}

enum class KeySet { rsa_pkcs1, ed25519, dual };

std::vector<KeySpec> key_specs(KeySet set) {
  switch (set) {
    case KeySet::rsa_pkcs1:
      return {KeySpec{kSignDomain, "rsa1", keys().rsa_pkcs1}};
    case KeySet::ed25519:
      return {KeySpec{kSignDomain, "ed", keys().ed25519}};
    case KeySet::dual:
      return {KeySpec{kSignDomain, "rsa8", keys().rsa_pkcs8}, KeySpec{kSignDomain, "ed", keys().ed25519}};
  }
  return {};
}

const char* key_set_name(KeySet set) {
  switch (set) {
    case KeySet::rsa_pkcs1:
      return "rsa";
    case KeySet::ed25519:
      return "ed25519";
    case KeySet::dual:
      return "dual";
  }
  return "?";
}

class DkimVerify : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    dns_ = std::make_unique<Dnsmasq>(std::vector<std::string>{
        txt_record("rsa1", public_record(keys().rsa_pkcs1)),
        txt_record("rsa8", public_record(keys().rsa_pkcs8)),
        txt_record("ed", public_record(keys().ed25519)),
    });
  }
  static void TearDownTestSuite() { dns_.reset(); }

 protected:
  // Signs `wire_message`, returns the message as stored by a receiver.
  static std::string signed_message(KeySet set, const std::string& wire_message, Backend backend = Backend::native) {
    auto signer = Signer::create(key_specs(set), "news.sender.test", backend);
    return stored(signer->sign(wire_message) + wire_message);
  }

  static std::unique_ptr<Dnsmasq> dns_;
};
std::unique_ptr<Dnsmasq> DkimVerify::dns_;

class DkimVerifyCases : public DkimVerify, public ::testing::WithParamInterface<std::tuple<std::size_t, KeySet>> {};

TEST_P(DkimVerifyCases, BothVerifiersPassEverySignature) {
  const MessageCase& c = message_cases()[std::get<0>(GetParam())];
  const KeySet set = std::get<1>(GetParam());
  const std::string message = signed_message(set, wire(c.header, c.body));
  const int expected = set == KeySet::dual ? 2 : 1;
  for (const std::string& script : verifiers()) {
    Verdict v = verify(script, message, dns_->port());
    EXPECT_EQ(v.exit_code, 0) << script << ":\n" << v.output << "\n" << message;
    EXPECT_EQ(count_lines(v.output, "pass "), expected) << script << ":\n" << v.output;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Messages, DkimVerifyCases,
    ::testing::Combine(::testing::Range<std::size_t>(0, 6),
                       ::testing::Values(KeySet::rsa_pkcs1, KeySet::ed25519, KeySet::dual)),
    [](const ::testing::TestParamInfo<std::tuple<std::size_t, KeySet>>& param) {
      return std::string(message_cases()[std::get<0>(param.param)].name) + "_" + key_set_name(std::get<1>(param.param));
    });

// The libopendkim backend on its own: dual signatures over every message case.
class DkimVerifyOpendkim : public DkimVerify, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(DkimVerifyOpendkim, BothVerifiersPassLibopendkimSignatures) {
  const MessageCase& c = message_cases()[GetParam()];
  const std::string message = signed_message(KeySet::dual, wire(c.header, c.body), Backend::opendkim);
  for (const std::string& script : verifiers()) {
    Verdict v = verify(script, message, dns_->port());
    EXPECT_EQ(v.exit_code, 0) << script << ":\n" << v.output << "\n" << message;
    EXPECT_EQ(count_lines(v.output, "pass "), 2) << script << ":\n" << v.output;
  }
}

INSTANTIATE_TEST_SUITE_P(Messages, DkimVerifyOpendkim, ::testing::Range<std::size_t>(0, 6),
                         [](const ::testing::TestParamInfo<std::size_t>& param) {
                           return std::string(message_cases()[param.param].name) + "_dual";
                         });

TEST_F(DkimVerify, TamperedBodyOrHeaderFailsInBothVerifiers) {
  const MessageCase& c = message_cases()[0];
  const std::string message = signed_message(KeySet::dual, wire(c.header, c.body));
  // Sanity: the untouched message passes, so a failure below is the tampering.
  for (const std::string& script : verifiers()) ASSERT_EQ(verify(script, message, dns_->port()).exit_code, 0) << script;

  std::string body_changed = message;
  std::size_t at = body_changed.find("plain message");
  ASSERT_NE(at, std::string::npos);
  body_changed.replace(at, 5, "PLAIN");
  std::string header_changed = message;
  at = header_changed.find("Subject: plain");
  ASSERT_NE(at, std::string::npos);
  header_changed.replace(at, 14, "Subject: Plain");

  for (const std::string* tampered : {&body_changed, &header_changed}) {
    for (const std::string& script : verifiers()) {
      Verdict v = verify(script, *tampered, dns_->port());
      EXPECT_EQ(v.exit_code, 1) << script << ":\n" << v.output;
      EXPECT_EQ(count_lines(v.output, "pass "), 0) << script << ":\n" << v.output;
      EXPECT_GE(count_lines(v.output, "fail "), 2) << script << ":\n" << v.output;
    }
  }
}

TEST(DkimKeygenVerify, RecordsFromKeygenVerifyWhenServedByDnsmasq) {
  kurier::test::TempDir dir;
  const fs::path rsa = dir.path() / "rsa.private";
  const fs::path ed = dir.path() / "ed.private";
  const std::string rsa_record = keygen(Algorithm::rsa_sha256, kSignDomain, "gen-rsa", rsa);
  const std::string ed_record = keygen(Algorithm::ed25519_sha256, kSignDomain, "gen-ed", ed);

  // Publish exactly the strings keygen printed.
  Dnsmasq dns({dnsmasq_line(rsa_record), dnsmasq_line(ed_record)});

  auto signer =
      Signer::create({KeySpec{kSignDomain, "gen-rsa", rsa}, KeySpec{kSignDomain, "gen-ed", ed}}, kSignDomain);
  const std::string body_wire = wire(message_cases()[0].header, message_cases()[0].body);
  const std::string message = stored(signer->sign(body_wire) + body_wire);
  for (const std::string& script : verifiers()) {
    Verdict v = verify(script, message, dns.port());
    EXPECT_EQ(v.exit_code, 0) << script << ":\n" << v.output;
    EXPECT_EQ(count_lines(v.output, "pass "), 2) << script << ":\n" << v.output;
  }
}

}  // namespace
}  // namespace kurier::dkim::test
