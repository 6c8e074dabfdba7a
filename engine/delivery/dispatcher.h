// The seam between the scheduler and the protocol (KumoMTA's QueueDispatcher, Postfix's
// qmgr / smtp split). The scheduler (engine/delivery/worker.h) decides when a destination
// gets a session and owns its ready queue, throttle and outcome policy; a Dispatcher runs
// one session: it reaches the destination, takes messages through the SessionSlot the
// scheduler hands it, and reports every result back through the same slot. The
// dispatcher never sees the queue store or the retry policy; the scheduler never sees
// SMTP. Unit tests run the scheduler against a fake Dispatcher.
//
// Threading: a Dispatcher belongs to one worker and runs on that worker's io_context
// thread, as do the SessionSlot calls. DispatcherFactory::make() runs on the worker's
// constructor thread; drain() on the thread that stops the engine.
#pragma once

#include <utility>  // Boost 1.74 coroutines with g++ 12 need this before Asio

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "engine/delivery/job.h"
#include "engine/delivery/outcome.h"

namespace boost::asio {
class io_context;
}

namespace kurier::engine {

// One session's view of its destination. Every message taken with next_message() is
// given back exactly once: recorded (record, transaction_done) or requeued by
// transaction_done.
class SessionSlot {
 public:
  virtual ~SessionSlot() = default;

  virtual const std::string& domain() const = 0;  // A-labels
  virtual const ShapingLimits& limits() const = 0;  // of the destination's shaping key
  virtual std::int64_t now() const = 0;             // the engine's clock

  // True while messages are queued for the destination and the engine is not stopping:
  // worth opening (or keeping) a connection.
  virtual bool wanted() const = 0;

  // The whole destination failed before any transaction: its MX lookup (dns_failed), or
  // every MX address / the TLS policy (connect_failed; phase mta_sts for a policy that
  // left nothing to try). The scheduler applies the site policy (engine/delivery/outcome.h)
  // to what is queued.
  virtual void dns_failed(dns::Status status, std::string_view detail) = 0;
  virtual void connect_failed(const std::vector<smtp::ConnectFailure>& failures, std::string_view tls_label) = 0;

  // The session is connected (past EHLO): from now on the destination counts it.
  virtual void connected() = 0;

  // The next message for this session, paced to the key's rate (waiting briefly when the
  // next slot is near); nullopt when the session should end: queue empty, per-connection
  // limit reached, the key slowed or suspended, the engine stopping.
  virtual boost::asio::awaitable<std::optional<Job>> next_message() = 0;

  // A transaction is about to be sent (progress and metrics count attempts).
  virtual void transaction_started() = 0;
  // The reply to the transaction of `job` (code 0: none; `error_phase` says where the
  // connection failed). `attempt` carries the time, MX and TLS facts and the reply text.
  // The scheduler reacts to throttling, then records or requeues. False: end the session.
  virtual bool transaction_done(Job&& job, const smtp::Reply& reply, smtp::Phase error_phase,
                                queue::Attempt attempt) = 0;
  // A message that failed before it could be sent (e.g. DKIM signing): recorded as is.
  virtual void record(Job&& job, const Classification& classification, queue::Attempt attempt) = 0;
};

class Dispatcher {
 public:
  virtual ~Dispatcher() = default;
  // Runs one session for the slot's destination until it has nothing more to send;
  // completes when the session has ended (connection closed).
  virtual boost::asio::awaitable<void> run_session(SessionSlot& slot) = 0;
};

// Makes one Dispatcher per worker. `resolver` is the worker's MX resolver (shared with
// routing, so both use one cache); it outlives the dispatcher.
class DispatcherFactory {
 public:
  virtual ~DispatcherFactory() = default;
  virtual std::unique_ptr<Dispatcher> make(boost::asio::io_context& io, dns::MxResolver& resolver) = 0;
  // Called once no session is running, before the workers' io_contexts stop: finish
  // background work that would post results to them (the signing pool).
  virtual void drain() {}
};

}  // namespace kurier::engine
