// GET /api/status from a running daemon (see daemon_client.h). Main thread; any
// failure (no daemon, timeout, non-200, not JSON) is nullopt, never an exception.
#include "engine/cli/daemon_client.h"

#include <nlohmann/json.hpp>

#include "engine/ops/http_server.h"

namespace kurier::engine {

std::optional<nlohmann::json> fetch_live_status(const Config& config) {
  HttpResponse response;
  try {
    response = http_call(config.http.listen, "GET", "/api/status", {}, {}, kStatusTimeout);
  } catch (const std::exception&) {
    return std::nullopt;  // no daemon: the caller reads the store instead
  }
  if (response.status != 200) return std::nullopt;
  auto status = nlohmann::json::parse(response.body, nullptr, false);
  if (!status.is_object()) return std::nullopt;
  return status;
}

}  // namespace kurier::engine
