// MTA-STS (RFC 8461): a recipient domain's published demand for verified TLS to a
// named set of MX hosts.
//
// Contract:
//   - parse_sts_record() / parse_sts_policy() / mx_matches() are pure functions over
//     the TXT record at _mta-sts.<domain> and the policy text served at
//     https://mta-sts.<domain>/.well-known/mta-sts.txt.
//   - MtaSts::lookup() finds the policy in force for a domain: the TXT record decides
//     whether one is published and under which id; the policy is fetched over HTTPS
//     (certificate verified against MtaStsOptions::ca_file for the host
//     mta-sts.<domain>, no redirects, kMaxPolicyBytes) and cached in memory for its
//     max_age. A changed id refetches. As RFC 8461 §5.1 demands, a TXT record without a
//     fetchable policy and without a cached one means "no policy": the outcome says why.
//
// Threading: lookup() is a coroutine on the caller's executor (a delivery worker's
// loop); the blocking TXT query runs on a small thread pool owned by MtaSts and the
// HTTPS fetch is asynchronous, so other domains' sessions never wait for it. The
// cache is shared by every worker (one mutex). Failures are values, never thrown.
#pragma once

#include <utility>  // Boost 1.74 coroutines with g++ 12 need this before Asio

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "dns/mx_resolver.h"

namespace kurier::engine {

// [mta_sts] in kurier.toml.
struct MtaStsOptions {
  bool enabled = true;               // honour published policies; false: no TXT queries
  std::uint16_t port = 443;          // of https://mta-sts.<domain>/ (tests point it elsewhere)
  std::string ca_file;               // PEM trust store for policy hosts and MX certificates;
                                     // "" = OpenSSL's default paths (the system store)
  std::chrono::milliseconds timeout{10'000};  // the whole fetch: connect, TLS, request, body
};

enum class StsMode { enforce, testing, none };
std::string_view to_string(StsMode mode);

struct StsPolicy {
  StsMode mode = StsMode::none;
  std::vector<std::string> mx;       // patterns: "mx1.example.net", "*.example.net" (lower case)
  std::chrono::seconds max_age{0};
};

// RFC 8461 §3.2: the policy body ("version: STSv1", "mode", "mx" (repeated), "max_age"),
// LF or CRLF lines, unknown keys ignored. error is "" on success, else names the line.
struct StsPolicyParse {
  std::optional<StsPolicy> policy;
  std::string error;
};
StsPolicyParse parse_sts_policy(std::string_view text);

// RFC 8461 §3.1: "v=STSv1; id=20160831085700Z;". The id (1-32 letters and digits) if
// the record is a valid STSv1 record, else nullopt.
std::optional<std::string> parse_sts_record(std::string_view record);

// RFC 8461 §4.1: "mx.example.net" matches itself; "*.example.net" matches exactly one
// more leftmost label ("a.example.net", not "example.net" nor "a.b.example.net").
// Case-insensitive; a trailing dot is ignored.
bool mx_matches(std::string_view pattern, std::string_view host);
bool mx_allowed(const StsPolicy& policy, std::string_view host);

struct StsLookup {
  std::optional<StsPolicy> policy;  // the policy in force; nullopt: deliver as without one
  std::string detail;               // why, e.g. "no _mta-sts record", "fetch failed: ..."
  bool cached = false;              // served from the cache
};

class MtaSts {
 public:
  // Addresses of a host name, resolved by the caller's resolver on its thread.
  using AddressLookup = std::function<boost::asio::awaitable<std::vector<std::string>>(std::string host)>;

  // `dns` is used for the TXT queries (servers, timeout, tries).
  MtaSts(MtaStsOptions options, dns::ResolverOptions dns);
  ~MtaSts();
  MtaSts(const MtaSts&) = delete;
  MtaSts& operator=(const MtaSts&) = delete;

  const MtaStsOptions& options() const;

  // The policy for `domain` (lower case). Runs on the caller's executor.
  boost::asio::awaitable<StsLookup> lookup(std::string domain, AddressLookup resolve);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Policy bodies larger than this are refused (RFC 8461 §3.3 lets senders bound them;
// real policies are a few hundred bytes).
inline constexpr std::size_t kMaxPolicyBytes = 64 * 1024;

}  // namespace kurier::engine
