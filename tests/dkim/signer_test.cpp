// Unit tests for dkim/: key loading and its errors, keygen, canonicalisation, the
// shape of the DKIM-Signature field, and the native backend against libopendkim.
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <utility>

#include "dkim/detail.h"
#include "dkim/signer.h"
#include "tests/dkim/helpers.h"

namespace kurier::dkim::test {
namespace {

using ::testing::HasSubstr;

constexpr std::int64_t kTime = 1700000000;

std::string sample_message() {
  return wire(
      "From: Sender News <news@sender.test>\n"
      "To: rcpt@example.test\n"
      "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\n"
      "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
      "Message-ID: <abc@sender.test>\n"
      "X-Mailer: kurier\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "List-Unsubscribe: <mailto:unsub@sender.test>,\n"
      " <https://sender.test/u/abc>\n"
      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
      "Feedback-ID: c1:news:kurier",
      "Hello,\n.leading dot\n..two dots\nend\n\n");
}

// The field with folds removed and every whitespace run as one space.
std::string unfolded(std::string_view field) {
  std::string out;
  bool space = false;
  for (char c : field) {
    if (c == '\r' || c == '\n') continue;
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string without_whitespace(std::string_view field) {
  std::string out;
  for (char c : field) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out += c;
  }
  return out;
}

// Value of tag `name` in an unfolded DKIM-Signature field.
std::string tag(const std::string& field, const std::string& name) {
  std::string text = unfolded(field);
  std::size_t pos = text.find(" " + name + "=");
  if (pos == std::string::npos) return "<missing>";
  pos += name.size() + 2;
  std::size_t end = text.find(';', pos);
  std::string value = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  std::string compact;
  for (char c : value) {
    if (c != ' ') compact += c;
  }
  return compact;
}

// Splits sign() output into its fields.
std::vector<std::string> fields(const std::string& signature) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < signature.size()) {
    std::size_t next = signature.find("\r\nDKIM-Signature:", pos);
    std::size_t end = next == std::string::npos ? signature.size() : next + 2;
    out.push_back(signature.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

template <typename F>
std::string key_error(F&& f) {
  try {
    f();
  } catch (const KeyError& e) {
    return e.what();
  }
  return "<no KeyError>";
}

std::unique_ptr<Signer> signer_for(const fs::path& key, Backend backend = Backend::native) {
  return Signer::create({KeySpec{kSignDomain, "k1", key}}, kSignDomain, backend);
}

// --- keys ---------------------------------------------------------------------------

TEST(DkimKeys, DetectsAlgorithmFromPkcs1Pkcs8AndEd25519Pem) {
  EXPECT_THAT(kurier::test::read_file(keys().rsa_pkcs1), HasSubstr("BEGIN RSA PRIVATE KEY"));
  EXPECT_THAT(kurier::test::read_file(keys().rsa_pkcs8), HasSubstr("BEGIN PRIVATE KEY"));
  EXPECT_EQ(key_algorithm(keys().rsa_pkcs1), Algorithm::rsa_sha256);
  EXPECT_EQ(key_algorithm(keys().rsa_pkcs8), Algorithm::rsa_sha256);
  EXPECT_EQ(key_algorithm(keys().ed25519), Algorithm::ed25519_sha256);
}

TEST(DkimKeys, PublicRecordMatchesOpensslPublicKey) {
  // openssl pkey -pubout gives the SubjectPublicKeyInfo that k=rsa publishes.
  RunResult pub = openssl({"pkey", "-in", keys().rsa_pkcs8.string(), "-pubout", "-outform", "DER"});
  std::string expected = detail::base64(reinterpret_cast<const unsigned char*>(pub.out.data()), pub.out.size());
  EXPECT_EQ(public_record(keys().rsa_pkcs8), "v=DKIM1; k=rsa; p=" + expected);
  // k=ed25519 publishes the bare 32-byte key: the last 32 bytes of the 44-byte SPKI.
  RunResult ed = openssl({"pkey", "-in", keys().ed25519.string(), "-pubout", "-outform", "DER"});
  ASSERT_EQ(ed.out.size(), 44u);
  std::string raw = detail::base64(reinterpret_cast<const unsigned char*>(ed.out.data()) + 12, 32);
  EXPECT_EQ(public_record(keys().ed25519), "v=DKIM1; k=ed25519; p=" + raw);
}

TEST(DkimKeys, MissingFileIsKeyErrorNamingTheFile) {
  fs::path missing = keys().dir() / "no-such.pem";
  std::string what = key_error([&] { signer_for(missing); });
  EXPECT_THAT(what, HasSubstr(missing.string()));
  EXPECT_THAT(what, HasSubstr("does not exist"));
}

TEST(DkimKeys, GarbageFileIsKeyError) {
  kurier::test::TempDir dir;
  fs::path garbage = dir.path() / "garbage.pem";
  kurier::test::write_file(garbage, "this is not a key\n\x01\x02\x03");
  std::string what = key_error([&] { signer_for(garbage); });
  EXPECT_THAT(what, HasSubstr(garbage.string()));
  EXPECT_THAT(what, HasSubstr("not a PEM file"));

  // A PEM armour around garbage: OpenSSL's decoder refuses it.
  fs::path broken = dir.path() / "broken.pem";
  kurier::test::write_file(broken, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  what = key_error([&] { signer_for(broken); });
  EXPECT_THAT(what, HasSubstr(broken.string()));
  EXPECT_THAT(what, HasSubstr("not a readable PEM private key"));
}

TEST(DkimKeys, DirectoryAndUnreadableFileAreKeyErrors) {
  kurier::test::TempDir dir;
  std::string what = key_error([&] { signer_for(dir.path()); });
  EXPECT_THAT(what, HasSubstr(dir.path().string()));
  EXPECT_THAT(what, HasSubstr("not a regular file"));

  // Mode 0000 stops everyone but root (who may read anything), so only then does the
  // read fail; as root the key loads, which is what the daemon would do too.
  fs::path locked = dir.path() / "locked.pem";
  fs::copy_file(keys().ed25519, locked);
  fs::permissions(locked, fs::perms::none);
  if (::geteuid() != 0) {
    what = key_error([&] { signer_for(locked); });
    EXPECT_THAT(what, HasSubstr(locked.string()));
    EXPECT_THAT(what, HasSubstr("cannot read"));
  } else {
    EXPECT_NO_THROW(signer_for(locked));
  }
}

TEST(DkimKeys, CertificatePublicKeyAndEncryptedKeyAreKeyErrors) {
  kurier::test::TempDir dir;
  fs::path cert = dir.path() / "cert.pem";
  openssl({"req", "-x509", "-key", keys().rsa_pkcs8.string(), "-out", cert.string(), "-subj", "/CN=sender.test",
           "-days", "1"});
  std::string what = key_error([&] { signer_for(cert); });
  EXPECT_THAT(what, HasSubstr(cert.string()));
  EXPECT_THAT(what, HasSubstr("is a certificate, not a private key"));

  fs::path pub = dir.path() / "pub.pem";
  openssl({"pkey", "-in", keys().ed25519.string(), "-pubout", "-out", pub.string()});
  EXPECT_THAT(key_error([&] { signer_for(pub); }), HasSubstr("is a public key"));

  fs::path encrypted = dir.path() / "encrypted.pem";
  openssl({"genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:secret", "-out", encrypted.string()});
  EXPECT_THAT(key_error([&] { signer_for(encrypted); }), HasSubstr("is encrypted"));
}

TEST(DkimKeys, ShortRsaAndUnsupportedTypesAreKeyErrors) {
  kurier::test::TempDir dir;
  fs::path short_key = dir.path() / "rsa512.pem";
  openssl({"genrsa", "-out", short_key.string(), "512"});
  std::string what = key_error([&] { signer_for(short_key); });
  EXPECT_THAT(what, HasSubstr(short_key.string()));
  EXPECT_THAT(what, HasSubstr("512 bits"));

  fs::path ec = dir.path() / "ec.pem";
  openssl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec.string()});
  EXPECT_THAT(key_error([&] { signer_for(ec); }), HasSubstr("unsupported key type"));
}

TEST(DkimKeys, KeyDomainMustBeTheFromDomainOrItsParent) {
  const fs::path& key = keys().ed25519;
  EXPECT_NO_THROW(Signer::create({KeySpec{"sender.test", "k1", key}}, "sender.test"));
  EXPECT_NO_THROW(Signer::create({KeySpec{"sender.test", "k1", key}}, "News.Sender.TEST"));
  std::string what = key_error([&] { Signer::create({KeySpec{"other.test", "k1", key}}, "sender.test"); });
  EXPECT_THAT(what, HasSubstr(key.string()));
  EXPECT_THAT(what, HasSubstr("'other.test'"));
  // A suffix that is not a parent domain does not align.
  EXPECT_THAT(key_error([&] { Signer::create({KeySpec{"der.test", "k1", key}}, "sender.test"); }),
              HasSubstr("DMARC alignment"));
  // Nor does a subdomain of the From domain.
  EXPECT_THAT(key_error([&] { Signer::create({KeySpec{"mail.sender.test", "k1", key}}, "sender.test"); }),
              HasSubstr("DMARC alignment"));
}

TEST(DkimKeys, BadArgumentsAreInvalidArgument) {
  EXPECT_THROW(Signer::create({}, "sender.test"), std::invalid_argument);
  EXPECT_THROW(Signer::create({KeySpec{"sender.test", "", keys().ed25519}}, "sender.test"), std::invalid_argument);
  EXPECT_THROW(Signer::create({KeySpec{"sender.test", "k 1", keys().ed25519}}, "sender.test"), std::invalid_argument);
  EXPECT_THROW(Signer::create({KeySpec{"sender.test", "k1", keys().ed25519}, KeySpec{"sender.test", "k1", keys().rsa_pkcs8}},
                              "sender.test"),
               std::invalid_argument);
}

// --- keygen -------------------------------------------------------------------------

TEST(DkimKeygen, WritesMode0600KeyAndTheRecordOfItsPublicKey) {
  kurier::test::TempDir dir;
  for (Algorithm algorithm : {Algorithm::rsa_sha256, Algorithm::ed25519_sha256}) {
    fs::path key = dir.path() / (algorithm == Algorithm::rsa_sha256 ? "rsa.private" : "ed.private");
    std::string record = keygen(algorithm, "example.com", "k1", key);
    struct stat st {};
    ASSERT_EQ(::stat(key.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(key_algorithm(key), algorithm);
    if (algorithm == Algorithm::rsa_sha256) {
      RunResult text = openssl({"pkey", "-in", key.string(), "-noout", "-text"});
      EXPECT_THAT(text.out, HasSubstr("2048 bit"));
    }

    EXPECT_TRUE(record.starts_with("k1._domainkey.example.com. IN TXT ( \"")) << record;
    EXPECT_TRUE(record.ends_with("\" )")) << record;
    // The quoted strings, each at most 255 bytes, concatenate to public_record().
    std::string joined;
    std::size_t pos = 0;
    int strings = 0;
    while ((pos = record.find('"', pos)) != std::string::npos) {
      std::size_t end = record.find('"', pos + 1);
      ASSERT_NE(end, std::string::npos);
      EXPECT_LE(end - pos - 1, 255u);
      joined += record.substr(pos + 1, end - pos - 1);
      pos = end + 1;
      ++strings;
    }
    EXPECT_EQ(joined, public_record(key));
    EXPECT_EQ(strings, algorithm == Algorithm::rsa_sha256 ? 2 : 1);
  }
}

TEST(DkimKeygen, RefusesToOverwrite) {
  kurier::test::TempDir dir;
  fs::path key = dir.path() / "k1.private";
  kurier::test::write_file(key, "precious");
  std::string what = key_error([&] { keygen(Algorithm::ed25519_sha256, "example.com", "k1", key); });
  EXPECT_THAT(what, HasSubstr(key.string()));
  EXPECT_THAT(what, HasSubstr("refusing to overwrite"));
  EXPECT_EQ(kurier::test::read_file(key), "precious");
  EXPECT_THROW(keygen(Algorithm::ed25519_sha256, "bad domain", "k1", dir.path() / "x"), std::invalid_argument);
  EXPECT_FALSE(fs::exists(dir.path() / "x"));
}

TEST(DkimRecord, ZoneRecordSplitsTheValueInto255ByteStrings) {
  const std::string value = "v=DKIM1; k=rsa; p=" + std::string(400, 'A');
  const std::string record = zone_record("example.com", "k1", value);
  EXPECT_EQ(record, "k1._domainkey.example.com. IN TXT ( \"" + value.substr(0, 255) + "\" \"" + value.substr(255) +
                        "\" )");
  EXPECT_EQ(zone_record("example.com", "k1", "v=DKIM1; k=ed25519; p=x"),
            "k1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=ed25519; p=x\" )");
}

TEST(DkimRecord, MismatchComparesKeyTypeAndPublicKey) {
  const std::string rsa = public_record(keys().rsa_pkcs8);
  const std::string ed = public_record(keys().ed25519);
  EXPECT_EQ(record_mismatch(rsa, rsa), "");
  // Tag order, spacing, folding inside p=, a missing v= and the default k=rsa do not matter.
  const std::string p = rsa.substr(rsa.find("p=") + 2);
  const std::string reordered = "p=" + p.substr(0, 100) + " \t" + p.substr(100) + " ;k = rsa;t=y;";
  EXPECT_EQ(record_mismatch(reordered, rsa), "");
  EXPECT_EQ(record_mismatch("p=" + p, rsa), "");
  EXPECT_EQ(record_mismatch(ed, ed), "");

  EXPECT_THAT(record_mismatch(public_record(keys().rsa_pkcs1), rsa), HasSubstr("different public key"));
  EXPECT_THAT(record_mismatch(ed, rsa), HasSubstr("k=ed25519 is published, the key is k=rsa"));
  EXPECT_THAT(record_mismatch("v=DKIM1; k=rsa; p=", rsa), HasSubstr("revoked"));
  EXPECT_THAT(record_mismatch("v=spf1 -all", rsa), HasSubstr("not a DKIM key record"));
  EXPECT_THAT(record_mismatch("v=DKIM1; k=rsa", rsa), HasSubstr("no p= tag"));
  EXPECT_THAT(record_mismatch("v=DKIM1; p=x; p=y", rsa), HasSubstr("malformed"));
}

// --- canonicalisation -----------------------------------------------------------------

std::string relaxed_body_of(std::string_view body) {
  std::string out;
  detail::relaxed_body(body, [&](std::string_view chunk) { out += chunk; });
  return out;
}

std::string relaxed_header_of(std::string_view field) {
  std::string out;
  detail::append_relaxed_header(field, out);
  return out;
}

TEST(DkimCanonical, RelaxedExamplesOfRfc6376) {
  // RFC 6376 §3.4.6.
  EXPECT_EQ(relaxed_header_of("A: X"), "a:X");
  EXPECT_EQ(relaxed_header_of("B : Y\t\r\n\tZ  "), "b:Y Z");
  EXPECT_EQ(relaxed_body_of(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
}

TEST(DkimCanonical, BodyUnstuffsDropsTrailingEmptyLinesAndAddsFinalCrlf) {
  const std::pair<std::string, std::string> cases[] = {
      {"..a\r\n...\r\nb\r\n", ".a\r\n..\r\nb\r\n"},
      {"a\r\n \t\r\n\r\nb  \r\n\t\r\n\r\n", "a\r\n\r\n\r\nb\r\n"},
      {"no final crlf", "no final crlf\r\n"},
      {"\r\n\r\n", ""},
      {"", ""},
  };
  for (const auto& [body, relaxed] : cases) EXPECT_EQ(relaxed_body_of(body), relaxed) << testing::PrintToString(body);
  // Longer than one chunk: the chunking must not change the text.
  std::string big;
  for (int i = 0; i < 2000; ++i) big += "line " + std::to_string(i) + "  with   spaces \r\n";
  std::string expected;
  for (int i = 0; i < 2000; ++i) expected += "line " + std::to_string(i) + " with spaces\r\n";
  EXPECT_EQ(relaxed_body_of(big), expected);
}

TEST(DkimCanonical, ParsesFoldedFieldsAndFindsTheBody) {
  detail::ParsedMessage m = detail::parse_message("From: a\r\nSubject: x\r\n y\r\n\r\nbody\r\n");
  ASSERT_EQ(m.fields.size(), 2u);
  EXPECT_EQ(m.fields[1].text, "Subject: x\r\n y");
  EXPECT_EQ(m.fields[1].name, "Subject");
  EXPECT_EQ(m.body, "body\r\n");
  EXPECT_THROW(detail::parse_message("From: a\r\nno separator"), SignError);
  EXPECT_THROW(detail::parse_message("From: a\r\nnot a field\r\n\r\n"), SignError);
}

// --- signing --------------------------------------------------------------------------

TEST(DkimSign, ReturnsFoldedCrlfFieldsOnePerKeyInKeyOrder) {
  auto signer = Signer::create({KeySpec{kSignDomain, "rsa", keys().rsa_pkcs1}, KeySpec{kSignDomain, "ed", keys().ed25519}},
                               kSignDomain);
  std::string out = signer->sign(sample_message(), kTime);
  std::vector<std::string> sigs = fields(out);
  ASSERT_EQ(sigs.size(), 2u);
  for (const std::string& field : sigs) {
    EXPECT_TRUE(field.starts_with("DKIM-Signature: v=1; ")) << field;
    EXPECT_TRUE(field.ends_with("\r\n"));
    std::size_t pos = 0;
    while (pos < field.size()) {
      std::size_t eol = field.find("\r\n", pos);
      ASSERT_NE(eol, std::string::npos) << "bare line end in " << field;
      // h= is not folded (that would change the signed text); 998 is RFC 5322's hard limit.
      EXPECT_LE(eol - pos, field.substr(pos).starts_with("\th=") ? 998u : 78u) << field.substr(pos, eol - pos);
      EXPECT_EQ(field.substr(pos, eol - pos).find('\n'), std::string::npos);
      if (pos > 0) {
        EXPECT_EQ(field[pos], '\t');
      }
      pos = eol + 2;
    }
    EXPECT_EQ(tag(field, "c"), "relaxed/relaxed");
    EXPECT_EQ(tag(field, "d"), "sender.test");
    EXPECT_EQ(tag(field, "t"), std::to_string(kTime));
    EXPECT_EQ(tag(field, "h"),
              "From:To:Subject:Date:Message-ID:MIME-Version:Content-Type:List-Unsubscribe:List-Unsubscribe-Post:"
              "Feedback-ID");
  }
  EXPECT_EQ(tag(sigs[0], "a"), "rsa-sha256");
  EXPECT_EQ(tag(sigs[0], "s"), "rsa");
  EXPECT_EQ(tag(sigs[1], "a"), "ed25519-sha256");
  EXPECT_EQ(tag(sigs[1], "s"), "ed");
  EXPECT_EQ(tag(sigs[0], "bh"), tag(sigs[1], "bh"));
}

TEST(DkimSign, SignsOnlyTheListedFieldsThatArePresent) {
  auto signer = signer_for(keys().ed25519);
  std::string out = signer->sign(wire("Received: x\nfrom: a@sender.test\nX-Mailer: y\nsubject: s", "b\n"), kTime);
  EXPECT_EQ(tag(out, "h"), "from:subject");
}

TEST(DkimSign, MessageWithoutFromIsSignError) {
  auto signer = signer_for(keys().ed25519);
  EXPECT_THROW(signer->sign(wire("To: a@b.test\nSubject: s", "b\n"), kTime), SignError);
  EXPECT_THROW(signer->sign("From: a@sender.test\r\n", kTime), SignError);
}

TEST(DkimSign, NativeBackendEqualsLibopendkimByteForByte) {
  // RSASSA-PKCS1-v1_5 and Ed25519 are deterministic: the same key, message and t= give
  // the same b= from both implementations only if they hash exactly the same text.
  const std::vector<std::string> messages = {
      sample_message(),
      wire("From: a@sender.test\nSubject:   spaced \t out  ", "  lead\n\ttabs\t\there  \n\n\n\n"),
      wire("From: a@sender.test\nTo: b@x.test", std::string(990, 'x') + "\n" + std::string(990, 'y') + "\n"),
      wire("From: a@sender.test\nTo: b@x.test", ".\n..\n.x\n"),
      wire("From: a@sender.test\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=", "Gr\xc3\xbc\xc3\x9f" "e\n"),
  };
  // (libopendkim refuses a body that does not end in CRLF, so every body here does.)
  for (const fs::path& key : {keys().rsa_pkcs1, keys().rsa_pkcs8, keys().ed25519}) {
    auto native = signer_for(key, Backend::native);
    auto reference = signer_for(key, Backend::opendkim);
    for (const std::string& message : messages) {
      std::string a = native->sign(message, kTime);
      std::string b = reference->sign(message, kTime);
      EXPECT_EQ(tag(a, "bh"), tag(b, "bh")) << key << "\n" << message;
      EXPECT_EQ(tag(a, "b"), tag(b, "b")) << key << "\n" << message;
      EXPECT_EQ(tag(a, "h"), tag(b, "h"));
      EXPECT_EQ(without_whitespace(a), without_whitespace(b));
    }
  }
}

TEST(DkimSign, ConcurrentSignsGiveTheSameResult) {
  auto signer = Signer::create({KeySpec{kSignDomain, "rsa", keys().rsa_pkcs8}, KeySpec{kSignDomain, "ed", keys().ed25519}},
                               kSignDomain);
  const std::string message = sample_message();
  const std::string expected = signer->sign(message, kTime);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 20; ++n) {
        std::string got = signer->sign(message, kTime);
        if (got != expected) {
          results[i] = got;
          return;
        }
      }
      results[i] = expected;
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& r : results) EXPECT_EQ(r, expected);
}

}  // namespace
}  // namespace kurier::dkim::test
