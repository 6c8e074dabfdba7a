// The delivery engine: takes due recipients from the queue, routes them to a ready
// queue per destination domain, runs sessions within the destination's limits, and
// records every reply inline.
//
// Shape (Postfix qmgr/smtp split, KumoMTA's two stages); the rooms of engine/delivery/:
//   feeder (the thread calling run; delivery.cpp) -> due() from the store, bounded by a window
//   workers (worker.h: one io_context + thread each; a domain always maps to the same
//            worker): destination ready queues, shaping (shaping/), sessions within the
//            key's limits, the outcome policy (outcome.h)
//   dispatcher (dispatcher.h, the seam; smtp_dispatcher.h in production): one session —
//            MX lookup, MTA-STS and TLS plan, connect, compose (compose.h), send
//   result writer (own thread; delivery.cpp) -> store.record() of everything that arrived
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
#include <string>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/config.h"
#include "queue/store.h"

namespace kurier::engine {

struct AdminChanges;      // engine/delivery/admin.h
class Breakers;           // engine/delivery/breaker.h
class CampaignControl;    // engine/delivery/campaign_control.h
class DispatcherFactory;  // engine/delivery/dispatcher.h
class Metrics;            // engine/ops/metrics.h
class CampaignEvents;     // engine/events/campaign_events.h


struct DeliveryProgress {
  std::uint64_t delivered = 0;  // outcomes recorded by this engine since it started
  std::uint64_t deferred = 0;
  std::uint64_t bounced = 0;
  std::uint64_t expired = 0;
  std::uint64_t in_flight = 0;       // dispatched, outcome not yet durable
  std::uint64_t sessions = 0;        // SMTP sessions open or opening
  std::uint64_t messages_sent = 0;   // transactions attempted
};

// An operator suspension in force (engine/delivery/admin.h).
struct OperatorHold {
  std::string scope;  // "domain:<d>" or "provider:<name>"
  std::int64_t until_ms = 0;
  std::string reason;
};

class Delivery {
 public:
  // Delivers over SMTP ([verp] secret required: InputError otherwise).
  Delivery(queue::Store& store, const Config& config, Clock clock = system_now_ms);
  // Delivers through `dispatchers` instead (tests run the scheduler against a fake).
  Delivery(queue::Store& store, const Config& config, Clock clock, std::unique_ptr<DispatcherFactory> dispatchers);
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // Delivers until done() returns true (evaluated on this thread whenever nothing is
  // due right now), stop() is called, or the store fails (rethrown). On return every
  // session has ended and every outcome received is durable.
  void run(const std::function<bool()>& done);

  // Logs one event per recorded outcome, after its commit, on the result writer's
  // thread (null: none). Set before run(); `events` must outlive run().
  void set_events(CampaignEvents* events);

  // Asks run() to return: no new transactions start; open ones finish (bounded by
  // their timeouts and a grace period). Safe from any thread.
  void stop();

  DeliveryProgress progress() const;
  // Live per-domain/provider figures (engine/ops/metrics.h); lives as long as this object.
  Metrics& metrics();
  // Recipients of `campaign` dispatched whose outcome is not durable yet.
  std::uint64_t in_flight(queue::CampaignId campaign) const;

  // Paused and cancelled campaigns (loaded from the queue); changes take effect before
  // the next transaction. Lives as long as this object.
  CampaignControl& control();
  Breakers& breakers();
  // Records operator changes (engine/delivery/admin.h) through the result writer, so
  // they never race a delivery outcome: recipients in flight, and any whose status
  // changed since the change was built, are left alone. Blocks until the changes are
  // durable; returns how many were recorded. Any thread; throws the store's error.
  std::size_t apply_admin(AdminChanges changes);
  // Operator suspensions of a scope ("domain:<d>", "provider:<name>"), kept in the queue.
  void suspend(const std::string& scope, std::int64_t until_ms, const std::string& reason);
  bool unsuspend(const std::string& scope);
  std::vector<OperatorHold> holds() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kurier::engine
