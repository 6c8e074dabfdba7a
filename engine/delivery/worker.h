// The scheduler's per-thread half (Postfix's qmgr for the destinations of one thread):
// an io_context and its thread, the destinations hashed to it — each a ready queue,
// routed to its shaping key (by domain, or by MX host when a provider rule matches by
// MX), given sessions within the key's limits, woken when the throttle allows — and
// the outcome of every message its sessions hand back, decided by the outcome policy
// (engine/delivery/outcome.h) and passed to the result writer.
//
// Threading: construct, start() and shutdown() on the engine's thread; post() from the
// feeder; everything else on the worker's own thread. A crash of the loop is reported
// through WorkerShared::fail.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>

#include "engine/core/clock.h"
#include "engine/core/config.h"
#include "engine/delivery/job.h"

namespace kurier::engine {

class Breakers;           // engine/delivery/breaker.h
class CampaignControl;    // engine/delivery/campaign_control.h
class DispatcherFactory;  // engine/delivery/dispatcher.h
class Metrics;            // engine/ops/metrics.h
class Shaper;             // engine/delivery/shaping/shaping.h

// Where a worker's outcomes go: the engine's result writer.
class OutcomeSink {
 public:
  virtual ~OutcomeSink() = default;
  virtual void report(queue::Outcome&& outcome) = 0;  // any worker thread
  virtual void fail(std::exception_ptr error) = 0;    // stops the engine
};

// What every worker shares; owned by the engine, outlives the workers.
struct WorkerShared {
  const Config& config;
  const Clock& clock;
  Shaper& shaper;
  Metrics& metrics;
  DispatcherFactory& dispatchers;
  OutcomeSink& outcomes;
  CampaignControl& control;  // paused/cancelled campaigns: their jobs go back unsent
  Breakers& breakers;        // fed with every final outcome
  const std::atomic<bool>& stopping;
  std::atomic<std::uint64_t>& sessions;       // open or opening, over all workers
  std::atomic<std::uint64_t>& messages_sent;  // transactions attempted
};

class Worker {
 public:
  Worker(WorkerShared& shared, std::size_t index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Hands a recipient to this worker (its destination is hashed here). Any thread.
  void post(Job&& job);
  std::size_t active_sessions() const;
  // Called once no session is active (or the grace period is over): stops the loop.
  // Jobs never tried stay scheduled in the store, so dropping them loses nothing;
  // coroutine frames still suspended are destroyed with the io_context.
  void shutdown();

  struct Impl;  // worker.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kurier::engine
