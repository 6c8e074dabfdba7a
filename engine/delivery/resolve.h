// MX lookups as coroutines on a worker's io_context: the scheduler routes by MX hosts,
// the SMTP dispatcher resolves before connecting, MTA-STS asks for policy hosts' addresses.
// One resolver per worker (its TTL cache shared by all three). Worker thread; a failed
// lookup is a dns::Status in the result, never an exception.
#pragma once

#include <utility>  // Boost 1.74 coroutines with g++ 12 need this before Asio

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "dns/mx_resolver.h"

namespace kurier::engine {

boost::asio::awaitable<dns::MxResult> resolve_mx(dns::MxResolver& resolver, std::string domain);

// A host's addresses: it asks for MX, and a host without MX records comes back as its
// own implicit MX with its A/AAAA addresses. Empty when the host has MX records or none.
boost::asio::awaitable<std::vector<std::string>> host_addresses(dns::MxResolver& resolver, std::string host);

}  // namespace kurier::engine
