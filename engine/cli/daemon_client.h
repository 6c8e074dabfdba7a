// The CLI's side of a running `kurier serve`'s HTTP API (engine/ops/api.h): the status
// document for status and top. Main thread; blocking calls with a deadline.
#pragma once

#include <chrono>
#include <optional>

#include <nlohmann/json_fwd.hpp>

#include "engine/core/config.h"

namespace kurier::engine {

// `kurier status` and `top` wait this long for the daemon before giving up on it.
inline constexpr std::chrono::milliseconds kStatusTimeout{3000};

// GET /api/status from the daemon at [http] listen; nullopt when none answers (the
// caller reads the queue instead, or says so).
std::optional<nlohmann::json> fetch_live_status(const Config& config);

}  // namespace kurier::engine
