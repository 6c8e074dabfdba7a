// Campaign control records (engine/delivery/campaign_control.h): JSON in the store's
// control records, a map in memory. Any thread; a bad record is logged and ignored
// (the campaign then runs), a store failure is thrown.
#include "engine/delivery/campaign_control.h"

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace kurier::engine {
namespace {

constexpr std::string_view kPrefix = "campaign/";

std::string record_name(queue::CampaignId id) { return std::string(kPrefix) + std::to_string(id); }

std::optional<RunState> run_state_from(std::string_view name) {
  for (auto s : {RunState::running, RunState::paused, RunState::cancelled})
    if (to_string(s) == name) return s;
  return std::nullopt;
}

}  // namespace

std::string_view to_string(RunState state) {
  switch (state) {
    case RunState::running: return "running";
    case RunState::paused: return "paused";
    case RunState::cancelled: return "cancelled";
  }
  return "running";
}

std::string_view to_string(ControlRefusal refusal) {
  switch (refusal) {
    case ControlRefusal::none: return "";
    case ControlRefusal::already: return "the campaign is already in that state";
    case ControlRefusal::cancelled: return "the campaign is cancelled";
    case ControlRefusal::running: return "the campaign is not paused";
  }
  return "";
}

std::string control_json(const ControlState& state) {
  return nlohmann::json{{"state", to_string(state.state)},
                        {"reason", state.reason},
                        {"by", state.by},
                        {"since", state.since_ms}}
      .dump();
}

std::optional<ControlState> parse_control_json(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("state") || !j["state"].is_string()) return std::nullopt;
  auto state = run_state_from(j["state"].get<std::string>());
  if (!state) return std::nullopt;
  ControlState out;
  out.state = *state;
  out.reason = j.value("reason", "");
  out.by = j.value("by", "operator");
  out.since_ms = j.value("since", std::int64_t{0});
  return out;
}

std::optional<ControlState> stored_control(queue::Store& store, queue::CampaignId id) {
  auto record = store.control(record_name(id));
  if (!record) return std::nullopt;
  return parse_control_json(*record);
}

CampaignControl::CampaignControl(queue::Store& store) : store_(store) {
  auto log = kurier::log::get("engine");
  store_.for_each_control(kPrefix, [&](std::string_view name, std::string_view value) {
    const auto id_text = name.substr(kPrefix.size());
    auto parsed = parse_control_json(value);
    queue::CampaignId id = 0;
    for (char c : id_text) id = c >= '0' && c <= '9' ? id * 10 + static_cast<queue::CampaignId>(c - '0') : 0;
    if (!parsed || id == 0) {
      log->warn("event=bad_control_record name={} value=\"{}\"", name, value);
      return true;
    }
    if (parsed->state != RunState::running) states_[id] = std::move(*parsed);
    return true;
  });
  auto held = std::make_shared<std::vector<queue::CampaignId>>();
  for (const auto& [id, s] : states_) held->push_back(id);
  held_ = std::move(held);
  any_held_ = !states_.empty();
}

ControlRefusal CampaignControl::change(queue::CampaignId id, ControlState next) {
  std::function<void(queue::CampaignId, const ControlState&)> notify;
  {
    std::lock_guard lock(mutex_);
    auto it = states_.find(id);
    const RunState now = it == states_.end() ? RunState::running : it->second.state;
    if (now == RunState::cancelled) return ControlRefusal::cancelled;
    if (now == next.state) return next.state == RunState::running ? ControlRefusal::running : ControlRefusal::already;
    // Written under the mutex: two changes of one campaign land in the store in the
    // order they land in memory.
    if (next.state == RunState::running) {
      store_.erase_control(record_name(id));
      states_.erase(id);
    } else {
      store_.put_control(record_name(id), control_json(next));
      states_[id] = next;
    }
    auto held = std::make_shared<std::vector<queue::CampaignId>>();
    for (const auto& [held_id, s] : states_) held->push_back(held_id);
    held_ = std::move(held);
    any_held_ = !states_.empty();
    notify = on_change_;
  }
  if (notify) notify(id, next);
  return ControlRefusal::none;
}

ControlRefusal CampaignControl::pause(queue::CampaignId id, std::string reason, std::string by,
                                      std::int64_t now_ms) {
  return change(id, {RunState::paused, std::move(reason), std::move(by), now_ms});
}

ControlRefusal CampaignControl::resume(queue::CampaignId id) { return change(id, {}); }

ControlRefusal CampaignControl::cancel(queue::CampaignId id, std::string reason, std::string by,
                                       std::int64_t now_ms) {
  return change(id, {RunState::cancelled, std::move(reason), std::move(by), now_ms});
}

ControlState CampaignControl::state(queue::CampaignId id) const {
  std::lock_guard lock(mutex_);
  auto it = states_.find(id);
  return it == states_.end() ? ControlState{} : it->second;
}

bool CampaignControl::held(queue::CampaignId id) const {
  if (!any_held()) return false;
  std::lock_guard lock(mutex_);
  return states_.count(id) > 0;
}

bool CampaignControl::cancelled(queue::CampaignId id) const {
  if (!any_held()) return false;
  std::lock_guard lock(mutex_);
  auto it = states_.find(id);
  return it != states_.end() && it->second.state == RunState::cancelled;
}

std::shared_ptr<const std::vector<queue::CampaignId>> CampaignControl::held_list() const {
  std::lock_guard lock(mutex_);
  return held_;
}

std::map<queue::CampaignId, ControlState> CampaignControl::all() const {
  std::lock_guard lock(mutex_);
  return states_;
}

void CampaignControl::on_change(std::function<void(queue::CampaignId, const ControlState&)> fn) {
  std::lock_guard lock(mutex_);
  on_change_ = std::move(fn);
}

}  // namespace kurier::engine
