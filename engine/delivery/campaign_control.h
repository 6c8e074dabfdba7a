// Campaign control: which campaigns the operator (or a circuit breaker) has paused or
// cancelled, and why. Kept in the queue (Store control records "campaign/<id>") so it
// survives restarts; read by the feeder (which campaigns' schedule entries to pass
// over) and by the workers (a paused campaign's queued jobs go back unsent), changed by
// the API, the CLI and the breakers.
//
// Threading: every method is thread-safe; changes write the store (synced) and then
// take effect in memory. Store failures are thrown as queue::StoreError.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/store.h"

namespace kurier::engine {

enum class RunState : std::uint8_t { running, paused, cancelled };
std::string_view to_string(RunState state);

struct ControlState {
  RunState state = RunState::running;
  std::string reason;    // what the operator typed, or the breaker's finding
  std::string by;        // "operator" or "breaker"
  std::int64_t since_ms = 0;
};

// Why a change was refused (the API answers 409 with it).
enum class ControlRefusal : std::uint8_t {
  none,
  already,    // already in that state
  cancelled,  // a cancelled campaign stays cancelled
  running,    // resume of a campaign that is not paused
};
std::string_view to_string(ControlRefusal refusal);

class CampaignControl {
 public:
  explicit CampaignControl(queue::Store& store);  // loads the records

  ControlRefusal pause(queue::CampaignId id, std::string reason, std::string by, std::int64_t now_ms);
  ControlRefusal resume(queue::CampaignId id);
  // Terminal: the campaign never sends again (its pending recipients are ended by the
  // caller, engine/delivery/admin.h).
  ControlRefusal cancel(queue::CampaignId id, std::string reason, std::string by, std::int64_t now_ms);

  ControlState state(queue::CampaignId id) const;
  bool held(queue::CampaignId id) const;  // paused or cancelled: no new transaction
  // Some campaign is held: one atomic load, for the per-message paths.
  bool any_held() const { return any_held_.load(std::memory_order_acquire); }
  bool cancelled(queue::CampaignId id) const;
  // Paused and cancelled campaigns, sorted (for Store::due's `held`). Cheap: a shared
  // copy rebuilt on change.
  std::shared_ptr<const std::vector<queue::CampaignId>> held_list() const;
  std::map<queue::CampaignId, ControlState> all() const;  // every non-running campaign

  // Called after every change, on the changing thread (events, breaker resets).
  void on_change(std::function<void(queue::CampaignId, const ControlState&)> fn);

 private:
  ControlRefusal change(queue::CampaignId id, ControlState next);

  queue::Store& store_;
  mutable std::mutex mutex_;
  std::map<queue::CampaignId, ControlState> states_;  // non-running only
  std::shared_ptr<const std::vector<queue::CampaignId>> held_ = std::make_shared<std::vector<queue::CampaignId>>();
  std::function<void(queue::CampaignId, const ControlState&)> on_change_;
  std::atomic<bool> any_held_{false};  // !states_.empty(), readable without the mutex
};

// The JSON object /api/status shows per campaign ({"state","reason","by","since"}).
std::string control_json(const ControlState& state);
std::optional<ControlState> parse_control_json(std::string_view text);
// The campaign's stored control record (nullopt: running), for readers without a
// CampaignControl (reports).
std::optional<ControlState> stored_control(queue::Store& store, queue::CampaignId id);

}  // namespace kurier::engine
