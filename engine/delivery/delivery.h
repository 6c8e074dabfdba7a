// The delivery engine: takes due recipients from the queue, routes them to a ready
// queue per destination domain, runs SMTP sessions within the destination's
// connection limit, and records every reply inline.
//
// Shape (Postfix qmgr/smtp split, KumoMTA's two stages):
//   feeder (the thread calling run)  -> due() from the store, bounded by a window
//   workers (one io_context + thread each; a domain always maps to the same worker)
//        destination ready queue -> session coroutines (open, send, reuse, QUIT)
//   result writer (own thread)       -> store.record() of everything that arrived
//                                       while the previous batch was syncing: group
//                                       commit, never one fsync per message.
// A recipient leaves the in-flight window only after its outcome is durable, so a
// crash can at worst resend what was in flight (at-least-once).
//
// Threading: construct, run() and destroy on one thread; stop() and progress() from
// any thread. Store failures stop the engine and are rethrown from run().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "engine/core/clock.h"
#include "engine/core/config.h"
#include "queue/store.h"

namespace kurier::engine {

class Metrics;  // engine/ops/metrics.h


struct DeliveryProgress {
  std::uint64_t delivered = 0;  // outcomes recorded by this engine since it started
  std::uint64_t deferred = 0;
  std::uint64_t bounced = 0;
  std::uint64_t expired = 0;
  std::uint64_t in_flight = 0;       // dispatched, outcome not yet durable
  std::uint64_t sessions = 0;        // SMTP sessions open or opening
  std::uint64_t messages_sent = 0;   // transactions attempted
};

class Delivery {
 public:
  Delivery(queue::Store& store, const Config& config, Clock clock = system_now_ms);
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // Delivers until done() returns true (evaluated on this thread whenever nothing is
  // due right now), stop() is called, or the store fails (rethrown). On return every
  // session has ended and every outcome received is durable.
  void run(const std::function<bool()>& done);

  // Asks run() to return: no new transactions start; open ones finish (bounded by
  // their timeouts and a grace period). Safe from any thread.
  void stop();

  DeliveryProgress progress() const;
  // Live per-domain/provider figures (engine/ops/metrics.h); lives as long as this object.
  Metrics& metrics();
  // Recipients of `campaign` dispatched whose outcome is not durable yet.
  std::uint64_t in_flight(queue::CampaignId campaign) const;

  struct Impl;  // defined in delivery.cpp, with the workers that use it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kurier::engine
