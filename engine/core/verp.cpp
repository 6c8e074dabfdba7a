// VERP token encoding and decoding: varint ids + truncated HMAC-SHA256, lower-case base32.
// Pure functions over a const secret: callable from any thread once constructed.
// Malformed or forged tokens decode to nullopt; only an empty secret throws.
#include "engine/core/verp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <stdexcept>

#include "common/text.h"

namespace kurier::engine {
namespace {

// A uint32 LEB128 varint needs at most 5 bytes (5 * 7 = 35 >= 32 bits).
constexpr std::size_t kMaxVarintBytes = 5;
// Largest payload: two full varints plus the MAC.
constexpr std::size_t kMaxPayloadBytes = 2 * kMaxVarintBytes + Verp::kMacBytes;
// ceil(8 * kMaxPayloadBytes / 5) base32 characters; anything longer is rejected
// before decoding, so a hostile local part costs nothing.
constexpr std::size_t kMaxTokenChars = (8 * kMaxPayloadBytes + 4) / 5;
// SHA-256 output size; the MAC is its first kMacBytes.
constexpr std::size_t kSha256Bytes = 32;

constexpr std::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

using Payload = std::array<unsigned char, kMaxPayloadBytes>;

std::size_t put_varint(std::uint32_t value, unsigned char* out) {
  std::size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<unsigned char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out[n++] = static_cast<unsigned char>(value);
  return n;
}

// Reads a minimal-length uint32 varint at data[*pos]; advances *pos. Rejects
// truncation, more than 5 bytes, values over 2^32-1 and non-minimal encodings
// (a trailing zero group), so each id has exactly one token.
bool get_varint(const unsigned char* data, std::size_t size, std::size_t* pos, std::uint32_t* value) {
  std::uint64_t result = 0;
  for (std::size_t i = 0; i < kMaxVarintBytes; ++i) {
    if (*pos >= size) return false;
    const unsigned char byte = data[(*pos)++];
    result |= static_cast<std::uint64_t>(byte & 0x7F) << (7 * i);
    if ((byte & 0x80) == 0) {
      if (i > 0 && byte == 0) return false;  // overlong
      if (result > 0xFFFFFFFFu) return false;
      *value = static_cast<std::uint32_t>(result);
      return true;
    }
  }
  return false;  // continuation bit on the 5th byte
}

void compute_mac(const std::string& secret, const unsigned char* ids, std::size_t ids_size,
                 unsigned char* mac_out) {
  std::array<unsigned char, kSha256Bytes> digest{};
  unsigned int digest_size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), ids, ids_size, digest.data(),
           &digest_size) == nullptr ||
      digest_size != kSha256Bytes) {
    throw std::runtime_error("verp: HMAC-SHA256 failed");  // OpenSSL broken: a bug, not input
  }
  for (std::size_t i = 0; i < Verp::kMacBytes; ++i) mac_out[i] = digest[i];
}

int base32_value(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

}  // namespace

Verp::Verp(std::string secret) : secret_(std::move(secret)) {
  if (secret_.empty()) throw std::invalid_argument("verp: the secret must not be empty");
}

std::string Verp::token(VerpIds ids) const {
  Payload payload{};
  std::size_t n = put_varint(ids.campaign, payload.data());
  n += put_varint(ids.recipient, payload.data() + n);
  compute_mac(secret_, payload.data(), n, payload.data() + n);
  n += kMacBytes;

  std::string out;
  out.reserve(kMaxTokenChars);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bits = (bits << 8) | payload[i];
    bit_count += 8;
    while (bit_count >= 5) {
      bit_count -= 5;
      out.push_back(kBase32Alphabet[(bits >> bit_count) & 0x1F]);
    }
  }
  if (bit_count > 0) out.push_back(kBase32Alphabet[(bits << (5 - bit_count)) & 0x1F]);
  return out;
}

std::string Verp::address(VerpIds ids, std::string_view domain) const {
  std::string out(kLocalPrefix);
  out += token(ids);
  out += '@';
  out += domain;
  return out;
}

std::optional<VerpIds> Verp::decode_token(std::string_view token) const {
  // Base32 without padding: a group of 8 chars carries 5 bytes; a partial group of
  // 2, 4, 5 or 7 chars carries 1..4 bytes. 1, 3 and 6 never occur.
  const std::size_t rem = token.size() % 8;
  if (token.empty() || token.size() > kMaxTokenChars || rem == 1 || rem == 3 || rem == 6) {
    return std::nullopt;
  }
  Payload payload{};
  std::size_t n = 0;
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (const char c : token) {
    const int v = base32_value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 5) | static_cast<std::uint32_t>(v);
    bit_count += 5;
    if (bit_count >= 8) {
      bit_count -= 8;
      payload[n++] = static_cast<unsigned char>((bits >> bit_count) & 0xFF);
    }
  }
  // Leftover bits must be zero: otherwise several spellings would decode alike.
  if ((bits & ((1u << bit_count) - 1)) != 0) return std::nullopt;

  VerpIds ids;
  std::size_t pos = 0;
  if (!get_varint(payload.data(), n, &pos, &ids.campaign)) return std::nullopt;
  if (!get_varint(payload.data(), n, &pos, &ids.recipient)) return std::nullopt;
  if (n - pos != kMacBytes) return std::nullopt;

  std::array<unsigned char, kMacBytes> expected{};
  compute_mac(secret_, payload.data(), pos, expected.data());
  if (CRYPTO_memcmp(expected.data(), payload.data() + pos, kMacBytes) != 0) return std::nullopt;
  return ids;
}

std::optional<VerpIds> Verp::decode_address(std::string_view address) const {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = address.substr(1, address.size() - 2);
  }
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos || at + 1 == address.size()) return std::nullopt;
  const std::string_view local = address.substr(0, at);
  if (local.size() <= kLocalPrefix.size()) return std::nullopt;
  for (std::size_t i = 0; i < kLocalPrefix.size(); ++i) {
    if (text::lower_char(local[i]) != kLocalPrefix[i]) return std::nullopt;
  }
  return decode_token(local.substr(kLocalPrefix.size()));
}

}  // namespace kurier::engine
