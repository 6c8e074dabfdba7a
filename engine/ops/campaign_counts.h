// Per-campaign counts for the daemon's /api/status, kept current by a refresher thread
// of their own: Store::counts() scans a whole campaign, so it runs at most once per
// kCountsRefresh, never on an HTTP request. to_json() and poke() from any thread; a
// failed refresh is logged and retried at the next period.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/delivery/delivery.h"
#include "queue/store.h"

namespace kurier::engine {

// A campaign's recipients by state: total, queued, delivered, deferred, bounced, expired,
// suppressed, cancelled (the same keys in /api/status and `kurier report --format json`).
nlohmann::json counts_json(const queue::Counts& counts);

class CampaignCounts {
 public:
  // How often the counts are refreshed: a dashboard polling every second never scans
  // a million-recipient campaign per request.
  static constexpr std::chrono::milliseconds kCountsRefresh{1000};

  // Starts the refresher; `store` and `delivery` must outlive this object.
  CampaignCounts(queue::Store& store, Delivery& delivery);
  ~CampaignCounts();  // stops and joins the refresher
  CampaignCounts(const CampaignCounts&) = delete;
  CampaignCounts& operator=(const CampaignCounts&) = delete;

  // Asks for a refresh soon (after a submission).
  void poke() { cv_.notify_all(); }
  // One object per campaign: name, created, counts by state, in_flight, done.
  nlohmann::json to_json();

 private:
  struct Row {
    queue::Campaign campaign;
    queue::Counts counts;
  };
  void loop();
  void refresh();
  void check_complaints(const queue::Campaign& campaign, const queue::Counts& counts);

  queue::Store& store_;
  Delivery& delivery_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<queue::CampaignId, Row> rows_;
  std::thread thread_;
};

}  // namespace kurier::engine
