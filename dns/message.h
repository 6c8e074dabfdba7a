// DNS wire-format reading for the MX resolver (internal to dns/; not part of the
// component's public interface, which is dns/mx_resolver.h).
//
// Contract: parse_message() reads a complete DNS response (RFC 1035 §4) into plain
// records. Only class IN records of the types the resolver needs are decoded (A, AAAA,
// CNAME, MX, SOA); others are skipped but still bounds-checked. Names come back lower
// case without the trailing dot; the root name is the empty string (RFC 7505 null MX).
// Answers from the network are untrusted: every length and compression pointer is
// checked, and anything inconsistent makes the whole message malformed.
//
// Threading: pure functions, any thread. No c-ares or Asio types in this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kurier::dns::wire {

inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypeCname = 5;
inline constexpr std::uint16_t kTypeSoa = 6;
inline constexpr std::uint16_t kTypeMx = 15;
inline constexpr std::uint16_t kTypeAaaa = 28;
inline constexpr std::uint16_t kClassIn = 1;

inline constexpr std::uint16_t kRcodeNoError = 0;
inline constexpr std::uint16_t kRcodeNxDomain = 3;

struct Record {
  std::string name;  // owner, lower case, no trailing dot
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;  // RFC 2181 §8: values with the top bit set read as 0
  // Type-specific data; only the fields of `type` are set.
  std::uint16_t preference = 0;   // MX
  std::string target;             // MX exchange, CNAME target ("" = root)
  std::string address;            // A / AAAA in text form
  std::uint32_t soa_minimum = 0;  // SOA MINIMUM (negative-caching TTL, RFC 2308)
};

struct Message {
  std::uint16_t id = 0;
  std::uint16_t rcode = 0;
  bool truncated = false;
  std::string question;  // first question's name, "" if none
  std::vector<Record> answers;
  std::vector<Record> authority;
  std::vector<Record> additional;
};

// Parses `size` bytes at `data`. On failure returns false and says why in `error`.
[[nodiscard]] bool parse_message(const unsigned char* data, std::size_t size, Message& out, std::string& error);

// Follows the CNAME chain in `answers` starting at `name`. On success sets `canonical`
// to the end of the chain, appends every name on the chain (including `name`) to
// `chain`, lowers `min_ttl` to the smallest CNAME TTL used, and returns true. Returns
// false with `error` set on a loop or a chain longer than kMaxCnameChain.
inline constexpr int kMaxCnameChain = 8;  // resolvers stop far earlier in practice; a
                                          // longer chain is a misconfiguration or an attack
[[nodiscard]] bool follow_cnames(const std::vector<Record>& answers, const std::string& name, std::string& canonical,
                                 std::vector<std::string>& chain, std::uint32_t& min_ttl, std::string& error);

// Negative-caching TTL of a NXDOMAIN/NODATA answer (RFC 2308 §5: min of the SOA's TTL
// and its MINIMUM field); false if the authority section carries no SOA.
[[nodiscard]] bool negative_ttl(const Message& message, std::uint32_t& ttl);

// Lower-cases ASCII and strips trailing dots.
std::string normalize_name(std::string name);

}  // namespace kurier::dns::wire
