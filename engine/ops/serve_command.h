// `kurier serve` (the daemon: continuous delivery + ops HTTP), `kurier submit` (hands
// a campaign to it), `kurier top`, and the live half of `kurier status`.
//
// HTTP API of the daemon (engine/ops/http_server.h; loopback by default):
//   GET  /                the dashboard (self-contained HTML, polls /api/status)
//   GET  /metrics         Prometheus text format 0.0.4
//   GET  /api/status      JSON: per domain and provider, campaigns with counts
//   POST /api/campaigns   {"campaign": "/abs/path/campaign.toml"}: the daemon runs the
//                         intake (atomic, synced) on the files at that path and answers
//                         {"campaign": id, "resumed", "rows", "queued", "suppressed"};
//                         400 {"error", "file", "line", "field"} for bad input.
// Every changing endpoint needs "Authorization: Bearer <token>": [http] token, or
// the token the daemon generates at first start into <queue path>/http.token (0600).
//
// Main thread only; return the process exit status (0, 1 runtime, 2 bad input).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "engine/core/config.h"

namespace kurier::engine {

struct ServeOptions {
  std::optional<std::filesystem::path> config;
};
int serve_command(const ServeOptions& options);

struct SubmitOptions {
  std::filesystem::path campaign;
  std::optional<std::filesystem::path> config;
};
int submit_command(const SubmitOptions& options);

struct TopOptions {
  std::optional<std::filesystem::path> config;
  int iterations = 0;  // refreshes before returning; 0 = until q or Ctrl-C
};
int top_command(const TopOptions& options);

// The file the daemon keeps its generated token in.
std::filesystem::path token_file(const Config& config);

// GET /api/status from the daemon at [http] listen; nullopt when none answers.
std::optional<nlohmann::json> fetch_live_status(const Config& config);
// The per-domain and per-provider table of a /api/status document (status, top).
std::string format_live_status(const nlohmann::json& status);

}  // namespace kurier::engine
