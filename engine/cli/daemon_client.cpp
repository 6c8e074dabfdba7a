// GET /api/status from a running daemon (see daemon_client.h). Main thread; any
// failure (no daemon, timeout, non-200, not JSON) is nullopt, never an exception.
#include "engine/cli/daemon_client.h"

#include <nlohmann/json.hpp>

#include "engine/ops/auth_token.h"
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

OperationResult daemon_operation(const Config& config, const nlohmann::json& request) {
  const std::string held = "kurier: the queue " + config.queue.path.string() +
                           " is held by another process (is `kurier serve` running?); ";
  const std::string token = read_token(config);
  if (token.empty())
    return {1, "", held + "no HTTP token to hand it the work: set [http] token or run as the user of `kurier serve` "
                          "(it writes " + token_file(config).string() + ")\n"};
  HttpResponse response;
  try {
    response = http_call(config.http.listen, "POST", "/api/operations", request.dump(), token, kOperationTimeout);
  } catch (const std::exception& e) {
    return {1, "", held + "no daemon answers at [http] listen = \"" + config.http.listen + "\" (" + e.what() + ")\n"};
  }
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (response.status == 200 && body.is_object()) return operation_result_from(body);
  std::string why = body.is_object() ? body.value("error", response.body) : response.body;
  return {1, "", "kurier: the daemon at " + config.http.listen + " refused: HTTP " + std::to_string(response.status) +
                     " " + why + "\n"};
}

}  // namespace kurier::engine
