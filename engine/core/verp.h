// VERP return paths: "b+TOKEN@<verp domain>" per message, so a bounce that arrives
// days later names the exact campaign and recipient.
//
// TOKEN = lower-case base32 (RFC 4648 alphabet, no padding) of
//   varint(campaign) varint(recipient) MAC, MAC = HMAC-SHA256(secret, ids)[0..kMacBytes).
// Lower case because some MTAs change the case of the local part (decoding is
// case-insensitive); the MAC so that a forged token can never suppress anyone.
// Thread-safe after construction (const methods only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kurier::engine {

struct VerpIds {
  std::uint32_t campaign = 0;
  std::uint32_t recipient = 0;
  bool operator==(const VerpIds&) const = default;
};

class Verp {
 public:
  // 80-bit MAC: forging one token needs ~2^79 tries against the bounce listener.
  static constexpr std::size_t kMacBytes = 10;
  static constexpr std::string_view kLocalPrefix = "b+";

  // `secret` must be non-empty (std::invalid_argument otherwise).
  explicit Verp(std::string secret);

  std::string token(VerpIds ids) const;
  // "b+TOKEN@domain"
  std::string address(VerpIds ids, std::string_view domain) const;
  // nullopt when malformed or the MAC does not match. Case-insensitive.
  std::optional<VerpIds> decode_token(std::string_view token) const;
  // Accepts "b+TOKEN@domain", optionally in angle brackets, any case; the domain is
  // not checked (the caller decides which domains it serves).
  std::optional<VerpIds> decode_address(std::string_view address) const;

 private:
  std::string secret_;
};

}  // namespace kurier::engine
