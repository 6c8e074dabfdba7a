// The daemon behind `kurier serve`: continuous delivery of the queue, the ops HTTP API
// (api.h) with its campaign counts, and the bounce listener, wired to one store.
// Construct, run() and destroy on one thread (the main thread); stop() from any
// thread. Bad configuration throws InputError before anything starts; a store
// failure ends run() with exit status 1.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "engine/bounces/listener.h"
#include "engine/core/config.h"
#include "engine/delivery/delivery.h"
#include "engine/ops/api.h"
#include "engine/ops/campaign_counts.h"
#include "engine/ops/http_server.h"
#include "engine/ops/metrics_seed.h"
#include "engine/events/campaign_events.h"
#include "engine/events/webhook.h"
#include "queue/store.h"

namespace kurier::engine {

// [http] listen as host and port. Throws InputError naming kurier.toml when it is not
// a host:port, or names a non-loopback address without [http] token (no TLS: the
// token and the API would travel in clear to an address nobody chose on purpose).
HostPort checked_http_listen(const Config& config);

class Daemon {
 public:
  // Starts the HTTP server on [http] listen and the bounce listener ([bounce] listen;
  // "" leaves it off), generating the API token at first start (auth_token.h).
  // Throws InputError for bad configuration, std::runtime_error when a port cannot
  // be bound or the token not written.
  Daemon(const Config& config, std::unique_ptr<queue::Store> store);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Delivers until stop(); then stops the HTTP server and the bounce listener.
  // Returns the exit status: 0, or 1 when delivery or an intake failed on the queue.
  int run();
  // Asks run() to return after the transactions in flight. Any thread; idempotent.
  void stop();

 private:
  void store_failed(const std::string& what);
  void start_events();

  const Config& config_;
  const HostPort listen_;
  std::unique_ptr<queue::Store> store_;
  std::unique_ptr<CampaignEvents> events_;  // the event log (null: [events] off); outlives its writers
  Delivery delivery_;
  CampaignCounts counts_;
  MetricsSeeder seed_;  // the counters from the queue, scanned once at start
  Api api_;
  HttpServer http_;
  std::unique_ptr<BounceListener> bounces_;
  std::unique_ptr<Webhooks> webhooks_;  // follow the event log; stopped first
  std::atomic<bool> stop_requested_{false};
  std::mutex store_failure_mutex_;
  std::string store_failure_;  // an intake that failed on the queue: exit 1 with it
};

}  // namespace kurier::engine
