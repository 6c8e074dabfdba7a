// Blocking TXT lookups: `kurier dkim check` (is the published DKIM key record the one
// for our key?) and MTA-STS's _mta-sts record (engine/delivery/mta_sts.cpp, on its own small
// thread pool, so delivery workers never block on it).
//
// Contract: lookup_txt(name, options) asks the configured servers (or the system's
// resolvers) for the TXT records at `name` and blocks until the answer, a failure, or
// options.timeout x options.tries per server. Each record comes back as the
// concatenation of its character-strings (RFC 7208 §3.3 / RFC 6376 §3.6.2.2: a long
// value is split into strings of at most 255 bytes, which the reader joins).
//   - records found -> TxtStatus::ok (records non-empty, in answer order);
//   - NXDOMAIN -> TxtStatus::nxdomain; the name exists without TXT -> TxtStatus::nodata;
//   - SERVFAIL, REFUSED, timeouts, malformed answers -> TxtStatus::temporary.
// No cache: every call queries.
//
// Why blocking and separate from MxResolver: a one-shot CLI check gains nothing from the
// io_context bridge, and MTA-STS asks once per domain and minute. The cost is a thread
// blocked per query and a new channel each time; an async TXT query on MxResolver would
// remove both. Threading: any thread; each call has its own c-ares channel.
// Throws std::runtime_error on invalid options (bad server string) or c-ares init failure.
#pragma once

#include <string>
#include <vector>

#include "dns/mx_resolver.h"

namespace kurier::dns {

enum class TxtStatus { ok, nxdomain, nodata, temporary };

struct TxtResult {
  TxtStatus status = TxtStatus::temporary;
  std::vector<std::string> records;  // each record's strings joined
  std::string detail;                // human-readable cause, e.g. "timeout (127.0.0.1:5353)"
};

// ResolverOptions: servers, timeout and tries are used; the cache settings are not.
TxtResult lookup_txt(const std::string& name, const ResolverOptions& options);

}  // namespace kurier::dns
