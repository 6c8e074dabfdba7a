// c-ares channel set-up shared by the async resolver and the blocking TXT lookup
// (dns-private: only dns/*.cpp include it). Library init once per process, option
// checks, channel creation and the server list, with one set of error texts.
// Any thread. Throws std::runtime_error on invalid options or c-ares failure.
#pragma once

#include <ares.h>

#include <string>

#include "dns/mx_resolver.h"

namespace kurier::dns::detail {

// Creates a channel with `options`' timeout (ms), tries and servers on top of the
// caller's `settings`/`mask` (flags, socket callbacks). Sets `servers_text` to the
// comma-separated servers, or "system resolvers", for messages. Nothing leaks on throw.
ares_channel open_channel(const ResolverOptions& options, ares_options settings, int mask, std::string& servers_text);

}  // namespace kurier::dns::detail
