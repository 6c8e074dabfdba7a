// Operations that change the queue, run the same way whoever holds it: the CLI runs
// them on the queue it opened, or — when `kurier serve` holds the queue — sends the same
// request to the daemon (POST /api/operations), which runs them beside its delivery.
// Either way the result (exit status, the text for stdout and stderr) is the same.
//
//   {"op": "pause"|"resume", "campaign": NAME, "reason": TEXT}
//   {"op": "cancel", "campaign": NAME, "reason": TEXT}
//   {"op": "retry", "campaign"|"domain"|"provider": NAME}
//   {"op": "suspend", "domain"|"provider": NAME, "for": "30m" (optional), "reason": TEXT}
//   {"op": "unsuspend", "domain"|"provider": NAME}
//   {"op": "purge", "campaign"|"domain": NAME, "reason": TEXT}
//   {"op": "suppress_add", "address", "reason"} | {"op": "suppress_remove", "address"}
//   {"op": "suppress_import", "file": NAME, "entries": [{"address","reason","time"}]}
//   {"op": "ingest", "paths": [ABSOLUTE PATH...], "json": bool}
//
// Threading: the caller's (the CLI's main thread, an HTTP handler thread); blocks on
// the store. Bad requests are exit 2 with the reason on stderr; store failures throw.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/core/config.h"
#include "queue/store.h"

namespace kurier::engine {

class CampaignEvents;  // engine/events/campaign_events.h
class Delivery;        // engine/delivery/delivery.h

struct OperationResult {
  int exit = 0;
  std::string out;  // for stdout
  std::string err;  // for stderr
};
nlohmann::json to_json(const OperationResult& result);
OperationResult operation_result_from(const nlohmann::json& j);

// What an operation works on: the store, and the delivery engine when one is running
// (it then applies changes through the engine, never racing its outcomes).
struct OperationTarget {
  queue::Store& store;
  const Config& config;
  Delivery* delivery = nullptr;
  std::int64_t now_ms = 0;
  // The event log (null: off). Recipients' changes are logged as their new state; the
  // operator's campaign-level actions as `admin` events (by the engine when running).
  CampaignEvents* events = nullptr;
};

OperationResult perform(const nlohmann::json& request, OperationTarget& target);

}  // namespace kurier::engine
