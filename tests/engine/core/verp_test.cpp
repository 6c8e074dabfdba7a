// Unit tests for VERP tokens: round trips, case folding, tamper resistance, address
// parsing and a known answer computed outside kurier.
#include "engine/core/verp.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kurier::engine {
namespace {

const std::string kSecret = "kurier-test-secret";

std::vector<std::uint32_t> interesting_ids() {
  return {0u,          1u,          2u,          127u,        128u,        255u,       300u,
          16383u,      16384u,      65535u,      2097151u,    2097152u,    268435455u, 268435456u,
          0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFEu, 0xFFFFFFFFu};
}

std::string to_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

TEST(Verp, EmptySecretIsRejected) { EXPECT_THROW(Verp(""), std::invalid_argument); }

TEST(Verp, RoundTripsManyIds) {
  const Verp verp(kSecret);
  for (std::uint32_t campaign : interesting_ids()) {
    for (std::uint32_t recipient : interesting_ids()) {
      const VerpIds ids{campaign, recipient};
      const std::string token = verp.token(ids);
      const auto decoded = verp.decode_token(token);
      ASSERT_TRUE(decoded.has_value()) << token;
      EXPECT_EQ(*decoded, ids) << token;
    }
  }
  // A sweep with a stride that walks through every varint length.
  for (std::uint64_t id = 0; id <= 0xFFFFFFFFu; id = id * 3 + 7) {
    const VerpIds ids{static_cast<std::uint32_t>(id), static_cast<std::uint32_t>(0xFFFFFFFFu - id)};
    EXPECT_EQ(verp.decode_token(verp.token(ids)), ids);
  }
}

TEST(Verp, TokenIsLowerCaseBase32Only) {
  const Verp verp(kSecret);
  for (std::uint32_t id : interesting_ids()) {
    const std::string token = verp.token({id, id});
    ASSERT_FALSE(token.empty());
    for (char c : token) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << token;
    }
  }
}

TEST(Verp, DecodesUpperCasedToken) {
  const Verp verp(kSecret);
  const VerpIds ids{42, 123456789};
  const std::string token = verp.token(ids);
  EXPECT_EQ(verp.decode_token(to_upper(token)), ids);
  std::string mixed = token;
  for (std::size_t i = 0; i < mixed.size(); i += 2) mixed[i] = to_upper(std::string(1, mixed[i]))[0];
  EXPECT_EQ(verp.decode_token(mixed), ids);
}

TEST(Verp, KnownAnswer) {
  // Computed independently with Python 3 (hmac, hashlib, base64):
  //   ids = varint(1) + varint(300) = 01 ac 02
  //   mac = hmac.new(b"kurier-test-secret", ids, hashlib.sha256).digest()[:10]
  //   base64.b32encode(ids + mac).decode().rstrip("=").lower()
  const Verp verp(kSecret);
  EXPECT_EQ(verp.token({1, 300}), "agwae7xdjt32g4o4zau5y");
  EXPECT_EQ(verp.decode_token("agwae7xdjt32g4o4zau5y"), (VerpIds{1, 300}));
  // Same recipe, ids = varint(4294967295) + varint(0) = ff ff ff ff 0f 00.
  EXPECT_EQ(verp.token({0xFFFFFFFFu, 0}), "777777ypaddgz4ndhwllz6rq2i");
  EXPECT_EQ(verp.address({1, 300}, "bounce.example.com"), "b+agwae7xdjt32g4o4zau5y@bounce.example.com");
}

TEST(Verp, AnySingleCharacterChangeIsRejected) {
  const Verp verp(kSecret);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  for (const VerpIds ids : {VerpIds{0, 0}, VerpIds{1, 300}, VerpIds{0xFFFFFFFFu, 0xFFFFFFFFu}}) {
    const std::string token = verp.token(ids);
    for (std::size_t i = 0; i < token.size(); ++i) {
      for (char c : alphabet) {
        if (c == token[i]) continue;
        std::string changed = token;
        changed[i] = c;
        EXPECT_FALSE(verp.decode_token(changed).has_value()) << token << " -> " << changed;
      }
      for (char c : std::string("018=+/-_. @")) {  // outside the alphabet
        std::string changed = token;
        changed[i] = c;
        EXPECT_FALSE(verp.decode_token(changed).has_value()) << changed;
      }
    }
  }
}

TEST(Verp, TruncationAndExtensionAreRejected) {
  const Verp verp(kSecret);
  const std::string token = verp.token({7, 99});
  for (std::size_t n = 0; n < token.size(); ++n) {
    EXPECT_FALSE(verp.decode_token(token.substr(0, n)).has_value()) << n;
    EXPECT_FALSE(verp.decode_token(token.substr(token.size() - n)).has_value()) << n;
  }
  for (const char* suffix : {"a", "aa", "q", "aaaaaaaa", "=", "=="}) {
    EXPECT_FALSE(verp.decode_token(token + suffix).has_value()) << suffix;
  }
  EXPECT_FALSE(verp.decode_token(token + token).has_value());
  EXPECT_FALSE(verp.decode_token("").has_value());
  EXPECT_FALSE(verp.decode_token(std::string(1000, 'a')).has_value());
}

TEST(Verp, WrongSecretIsRejected) {
  const Verp signer(kSecret);
  const Verp other("another-secret");
  const Verp prefix("kurier-test-secre");
  for (std::uint32_t id : interesting_ids()) {
    const std::string token = signer.token({id, id + 1});
    EXPECT_FALSE(other.decode_token(token).has_value());
    EXPECT_FALSE(prefix.decode_token(token).has_value());
  }
}

TEST(Verp, MalformedPayloadsAreRejectedEvenWithValidMac) {
  // Each token below carries a correct MAC over its (malformed) id bytes, so only the
  // structural checks can reject it. Computed with Python 3 as in KnownAnswer:
  //   base64.b32encode(ids + hmac.new(secret, ids, sha256).digest()[:10]).rstrip("=").lower()
  const Verp verp(kSecret);
  // Control: ids = 01 00 (campaign 1, recipient 0) is well-formed.
  EXPECT_EQ(verp.decode_token("aeamb762tngr5et72qda"), (VerpIds{1, 0}));
  // ids = 81 00 00: campaign 1 as an overlong (non-minimal) varint.
  EXPECT_FALSE(verp.decode_token("qeaaa3dlbdhecsmqt3xog").has_value());
  // ids = 00 80 00 00: recipient 0 as an overlong varint.
  EXPECT_FALSE(verp.decode_token("acaaaac5qsxcurpvttka3vq").has_value());
  // ids = ff ff ff ff 1f 00: campaign 2^35-1, over 32 bits.
  EXPECT_FALSE(verp.decode_token("777777y7aae55fbpbnfjnvein4").has_value());
  // ids = ff ff ff ff ff 01 00: a 6-byte varint.
  EXPECT_FALSE(verp.decode_token("77777777aeadyn73u6exnkgabv7q").has_value());
  // ids = 01: the recipient id is missing.
  EXPECT_FALSE(verp.decode_token("aegp6o47tnm5y7kqcm").has_value());
}

TEST(Verp, DecodeAddressVariants) {
  const Verp verp(kSecret);
  const VerpIds ids{12, 34567};
  const std::string token = verp.token(ids);
  const std::string address = verp.address(ids, "bounce.example.com");
  EXPECT_EQ(address, "b+" + token + "@bounce.example.com");
  EXPECT_EQ(verp.decode_address(address), ids);
  EXPECT_EQ(verp.decode_address("<" + address + ">"), ids);
  EXPECT_EQ(verp.decode_address(to_upper(address)), ids);
  EXPECT_EQ(verp.decode_address("<" + to_upper(address) + ">"), ids);
  EXPECT_EQ(verp.decode_address("b+" + token + "@other.example"), ids);  // domain not checked

  EXPECT_FALSE(verp.decode_address("c+" + token + "@bounce.example.com").has_value());
  EXPECT_FALSE(verp.decode_address("b-" + token + "@bounce.example.com").has_value());
  EXPECT_FALSE(verp.decode_address("bb+" + token + "@bounce.example.com").has_value());
  EXPECT_FALSE(verp.decode_address(token + "@bounce.example.com").has_value());
  EXPECT_FALSE(verp.decode_address("b+" + token).has_value());                 // no '@'
  EXPECT_FALSE(verp.decode_address("b+" + token + "@").has_value());           // no domain
  EXPECT_FALSE(verp.decode_address("b+@bounce.example.com").has_value());      // no token
  EXPECT_FALSE(verp.decode_address("<b+" + token + "@x.example").has_value());  // unbalanced
  EXPECT_FALSE(verp.decode_address("b+" + token + "x@bounce.example.com").has_value());
  EXPECT_FALSE(verp.decode_address("").has_value());
  EXPECT_FALSE(verp.decode_address("<>").has_value());
}

}  // namespace
}  // namespace kurier::engine
