// MailHostLookup (engine/intake/hygiene/hygiene.h) over dns/: the c-ares MX resolver on a private
// io_context, run on the calling thread for the duration of each lookup() call.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/intake/hygiene/hygiene.h"

namespace kurier::engine {

struct Config;

// Queries in flight at once: enough to hide round trips, few enough not to look
// like a flood to the resolver (c-ares itself has no limit).
inline constexpr std::size_t kMaxMailHostQueriesInFlight = 64;

// `servers`: "host:port" (empty: the system's resolvers); `timeout`: per try.
// Throws std::runtime_error for a bad server string.
std::unique_ptr<MailHostLookup> make_dns_mail_host_lookup(std::vector<std::string> servers,
                                                          std::chrono::milliseconds timeout);

// The lookup `hygiene` needs with the resolvers of `config`: null when its no_mail_host
// policy is off (no DNS at all then).
std::unique_ptr<MailHostLookup> make_no_mail_host_lookup(const Hygiene& hygiene, const Config& config);

}  // namespace kurier::engine
