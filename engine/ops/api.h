// The daemon's HTTP API: routes each request of the ops HTTP server (http_server.h)
// to the dashboard, the metrics, the status document or an intake. Runs on the HTTP
// server's handler threads: reads concurrently, submissions one at a time. Bad input
// is a 4xx answer; an intake that fails on the queue is a 507 and on_store_failure().
//
//   GET  /                the dashboard (self-contained HTML, polls /api/status)
//   GET  /metrics         Prometheus text format 0.0.4
//   GET  /api/status      JSON: per domain and provider, campaigns with counts
//   GET  /api/history     JSON: the last hour per minute, for the charts (chart_data.h)
//   POST /api/campaigns   {"campaign": "/abs/path/campaign.toml"}: the daemon runs the
//                         intake (atomic, synced) on the files at that path and answers
//                         {"campaign": id, "resumed", "rows", "queued", "suppressed"};
//                         400 {"error", "file", "line", "field"} for bad input.
//   POST /api/operations  a queue operation (engine/ops/operations.h): pause, resume,
//                         cancel, retry, suspend, unsuspend, purge, suppression changes,
//                         bounce ingest; answers {"exit", "stdout", "stderr"} as the CLI
//                         prints them.
// Every changing endpoint needs "Authorization: Bearer <token>" (auth_token.h).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/core/config.h"
#include "engine/delivery/delivery.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/intake/hygiene/hygiene_dns.h"
#include "engine/ops/campaign_counts.h"
#include "engine/ops/http_server.h"
#include "queue/store.h"

namespace kurier::engine {

class CampaignEvents;  // engine/events/campaign_events.h

class Api {
 public:
  // Every reference must outlive this object; `token` guards the changing endpoints.
  Api(const Config& config, queue::Store& store, Delivery& delivery, CampaignCounts& counts, std::string token);

  HttpResponse operator()(const HttpRequest& request);

  // Called (on an HTTP handler thread) when an intake fails on the queue: the daemon
  // stops rather than send mail it cannot account for. Set before serving.
  void on_store_failure(std::function<void(const std::string&)> fn) { on_store_failure_ = std::move(fn); }
  // Intakes log their events here (null: no event log). Set before serving.
  void set_events(CampaignEvents* events) { events_ = events; }

 private:
  nlohmann::json status();
  HttpResponse submit(const std::string& body);
  HttpResponse operation(const std::string& body);
  std::string control_metrics();

  const Config& config_;
  queue::Store& store_;
  Delivery& delivery_;
  CampaignCounts& counts_;
  std::string token_;
  const Hygiene hygiene_;
  std::unique_ptr<MailHostLookup> mail_hosts_;  // null: no_mail_host is off
  std::mutex submit_mutex_;
  std::mutex operation_mutex_;  // queue operations one at a time
  std::function<void(const std::string&)> on_store_failure_;
  CampaignEvents* events_ = nullptr;
  std::shared_ptr<spdlog::logger> log_ = kurier::log::get("serve");
};

}  // namespace kurier::engine
