// The CLI's side of a running `kurier serve`'s HTTP API (engine/ops/api.h): the status
// document for status and top, and the queue operations (operations.h). Main thread; blocking calls with a deadline.
#pragma once

#include <chrono>
#include <optional>

#include <nlohmann/json_fwd.hpp>

#include "engine/core/config.h"
#include "engine/ops/operations.h"

namespace kurier::engine {

// `kurier status` and `top` wait this long for the daemon before giving up on it.
inline constexpr std::chrono::milliseconds kStatusTimeout{3000};

// `kurier serve`'s answer to a queue operation can take a while (a cancel of a large
// campaign scans it).
inline constexpr std::chrono::milliseconds kOperationTimeout{600000};

// POST /api/operations (engine/ops/operations.h) to the daemon holding the queue; a
// daemon that cannot be reached or refuses the token is exit 1 with the reason.
OperationResult daemon_operation(const Config& config, const nlohmann::json& request);

// GET /api/status from the daemon at [http] listen; nullopt when none answers (the
// caller reads the queue instead, or says so).
std::optional<nlohmann::json> fetch_live_status(const Config& config);

}  // namespace kurier::engine
