// MX resolution for direct delivery.
//
// Contract: resolve_mx(domain) produces the ordered list of mail exchangers to try,
// each with its IP addresses, or a classified failure:
//   - MX records sorted by preference, random order among equal preferences;
//   - no MX record but A/AAAA present -> one implicit MX: the domain itself (RFC 5321 §5.1);
//   - null MX (RFC 7505, a single "0 ." record) -> Status::null_mx (permanent);
//   - NXDOMAIN, or no MX and no A/AAAA -> Status::nxdomain / Status::no_mail_host (permanent);
//   - SERVFAIL, REFUSED, timeouts, truncated or malformed answers -> Status::temporary.
// Answers are cached for their TTL (the smallest TTL involved, clamped to
// [kMinCacheTtl, kMaxCacheTtl]); temporary failures are cached for kFailureCacheTtl.
//
// Threading: a resolver belongs to one io_context and must be used from that
// io_context's thread only; callbacks run on that thread, never inline from
// resolve_mx. Destroying the resolver cancels outstanding queries; their callbacks
// are not invoked after destruction.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace kurier::dns {

struct MxHost {
  std::string name;                    // exchange host name, lower case, no trailing dot
  std::uint16_t preference = 0;
  std::vector<std::string> addresses;  // textual IPv4/IPv6, IPv4 first; may be empty
                                       // if the host itself does not resolve
};

enum class Status {
  ok,            // hosts is non-empty
  null_mx,       // RFC 7505: the domain accepts no mail
  nxdomain,      // the domain does not exist
  no_mail_host,  // the domain exists but has neither MX nor A/AAAA
  temporary,     // SERVFAIL, timeout, refused, malformed: try again later
};

const char* to_string(Status status);
inline bool is_permanent(Status s) { return s == Status::null_mx || s == Status::nxdomain || s == Status::no_mail_host; }

struct MxResult {
  Status status = Status::temporary;
  std::vector<MxHost> hosts;   // in the order to try them
  bool implicit_mx = false;    // hosts came from A/AAAA of the domain itself
  std::string detail;          // human-readable cause, e.g. "SERVFAIL from 127.0.0.1:5353"
};

struct ResolverOptions {
  // "host:port" or "host" (port 53), IPv4 or [IPv6]:port. Empty: the system's resolvers.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{5000};  // per try
  int tries = 2;
  static constexpr std::chrono::seconds kMinCacheTtl{5};
  static constexpr std::chrono::seconds kMaxCacheTtl{3600};
  static constexpr std::chrono::seconds kFailureCacheTtl{30};
  bool cache = true;
};

// The seam that tests and the engine depend on.
class MxResolver {
 public:
  using Callback = std::function<void(MxResult)>;
  virtual ~MxResolver() = default;
  // Resolves `domain` (ASCII or A-label; case-insensitive). `done` is called exactly
  // once, on the resolver's io_context thread.
  virtual void resolve_mx(const std::string& domain, Callback done) = 0;
};

// The c-ares implementation driven by the io_context (socket-state callback + timer).
// Throws std::runtime_error on invalid options (bad server string) or c-ares init failure.
std::unique_ptr<MxResolver> make_cares_resolver(boost::asio::io_context& io, ResolverOptions options);

}  // namespace kurier::dns
