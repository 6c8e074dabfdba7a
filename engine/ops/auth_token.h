// The daemon's API token: [http] token from kurier.toml, else one the daemon generates
// at its first start into <queue path>/http.token (mode 0600, synced). Any thread; a
// token that cannot be generated or written throws std::runtime_error.
#pragma once

#include <filesystem>
#include <string>

#include "engine/core/config.h"

namespace kurier::engine {

// The file the daemon keeps its generated token in.
std::filesystem::path token_file(const Config& config);

// The configured token, else the stored one; "" when there is neither (`kurier submit`
// before any daemon has started).
std::string read_token(const Config& config);

// The configured or stored token; generates and stores one when there is neither
// (`kurier serve`).
std::string ensure_token(const Config& config);

// True when an Authorization header value is exactly "Bearer <token>" (constant-time
// comparison of the token). An empty token matches nothing.
bool token_matches(const std::string& authorization, const std::string& token);

}  // namespace kurier::engine
