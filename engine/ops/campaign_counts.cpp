// The refresher behind the daemon's campaign counts (see campaign_counts.h). Its own
// thread scans the store; HTTP handler threads read the last result under the mutex.
// A failed scan is logged (event=status_refresh_failed) and tried again next period.
#include "engine/ops/campaign_counts.h"

#include "common/log.h"
#include "engine/delivery/breaker.h"
#include "engine/delivery/campaign_control.h"
#include "engine/ops/metrics.h"
#include "engine/core/text_format.h"

namespace kurier::engine {

nlohmann::json counts_json(const queue::Counts& counts) {
  return {{"total", counts.total()}, {"queued", counts.queued}, {"delivered", counts.delivered},
          {"deferred", counts.deferred}, {"bounced", counts.bounced}, {"expired", counts.expired},
          {"suppressed", counts.suppressed}, {"cancelled", counts.cancelled}};
}

CampaignCounts::CampaignCounts(queue::Store& store, Delivery& delivery) : store_(store), delivery_(delivery) {
  thread_ = std::thread([this] { loop(); });
}

CampaignCounts::~CampaignCounts() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

nlohmann::json CampaignCounts::to_json() {
  std::lock_guard lock(mutex_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [id, row] : rows_) {
    // One flat object (json objects keep their keys sorted, so the order here is moot).
    nlohmann::json campaign = counts_json(row.counts);
    campaign["campaign"] = row.campaign.name;
    campaign["created"] = iso_time(row.campaign.created_ms, false);
    campaign["in_flight"] = delivery_.in_flight(id);
    campaign["done"] = row.counts.pending() == 0;
    const ControlState control = delivery_.control().state(id);
    if (control.state != RunState::running)
      campaign["control"] = {{"state", to_string(control.state)},
                             {"reason", control.reason},
                             {"by", control.by},
                             {"since", control.since_ms}};
    out.push_back(std::move(campaign));
  }
  return out;
}

void CampaignCounts::loop() {
  auto log = kurier::log::get("serve");
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    try {
      refresh();
    } catch (const std::exception& e) {
      log->error("event=status_refresh_failed error=\"{}\"", e.what());
    }
    lock.lock();
    cv_.wait_for(lock, kCountsRefresh);
  }
}

// The complaint breaker (engine/delivery/breaker.h) reads the queue's counts: complaints
// arrive through the bounce listener and ingest, long after delivery.
void CampaignCounts::check_complaints(const queue::Campaign& campaign, const queue::Counts& counts) {
  if (counts.pending() == 0) return;  // nothing left to stop
  auto finding = delivery_.breakers().observe_complaints(campaign.id, counts.delivered, counts.complaint);
  if (!finding) return;
  kurier::log::get("serve")->warn("event=breaker_tripped campaign={} finding=\"{}\"", campaign.name, *finding);
  delivery_.metrics().global().breaker_trips.fetch_add(1, std::memory_order_relaxed);
  delivery_.control().pause(campaign.id, *finding, "breaker", system_now_ms());
}

void CampaignCounts::refresh() {
  for (auto& campaign : store_.campaigns()) {
    {
      std::lock_guard lock(mutex_);
      auto it = rows_.find(campaign.id);
      // A campaign with nothing pending does not change any more (late events aside).
      if (it != rows_.end() && it->second.counts.pending() == 0) continue;
    }
    auto counts = store_.counts(campaign.id);
    check_complaints(campaign, counts);
    std::lock_guard lock(mutex_);
    rows_[campaign.id] = Row{std::move(campaign), counts};
  }
}

}  // namespace kurier::engine
