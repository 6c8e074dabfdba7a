// The scheduler's per-thread half (engine/delivery/worker.h): destinations, routing,
// session slots and outcomes on one io_context thread. A session that throws is logged
// and its destination keeps its queue; a crash of the loop stops the engine.
#include "engine/delivery/worker.h"

#include <algorithm>
#include <deque>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/asio.h"
#include "common/log.h"
#include "dns/mx_resolver.h"
#include "engine/bounces/apply.h"
#include "engine/delivery/breaker.h"
#include "engine/delivery/campaign_control.h"
#include "engine/delivery/dispatcher.h"
#include "engine/delivery/resolve.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {
namespace {

// Queued messages per session before another session to the destination is opened.
constexpr std::size_t kPendingPerSession = 4;
// A destination whose throttle will not let it send for longer than this (suspended,
// far behind its rate) hands its queued recipients back to the store, due when the
// throttle allows: they must not hold the in-flight window that other domains need.
constexpr std::int64_t kHoldInMemoryMs = 5000;
// The longest a session waits for its next message slot (rate pacing) while holding
// its connection open; beyond that it ends and a later session sends.
constexpr std::int64_t kMaxPaceWaitMs = 2000;

// A destination's ready queue. Keeps its series' "queued" gauge in step: every job in
// it counts, and jobs still in it when it is destroyed (dropped at shutdown; they stay
// scheduled in the store) leave the gauge with it.
class ReadyQueue {
 public:
  explicit ReadyQueue(Series& metrics) : metrics_(metrics) {}
  ReadyQueue(const ReadyQueue&) = delete;
  ReadyQueue& operator=(const ReadyQueue&) = delete;
  ~ReadyQueue() { metrics_.add_queued(-static_cast<std::int64_t>(jobs_.size())); }

  bool empty() const { return jobs_.empty(); }
  std::size_t size() const { return jobs_.size(); }
  void push_back(Job&& job) {
    jobs_.push_back(std::move(job));
    metrics_.add_queued(1);
  }
  void push_front(Job&& job) {
    jobs_.push_front(std::move(job));
    metrics_.add_queued(1);
  }
  // Takes out the jobs `pred` picks, in order (e.g. those of a paused campaign).
  template <typename Pred>
  std::vector<Job> take_if(Pred pred) {
    std::vector<Job> out;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (!pred(*it)) {
        ++it;
        continue;
      }
      out.push_back(std::move(*it));
      it = jobs_.erase(it);
    }
    metrics_.add_queued(-static_cast<std::int64_t>(out.size()));
    return out;
  }
  Job pop_front() {
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    metrics_.add_queued(-1);
    return job;
  }

 private:
  Series& metrics_;
  std::deque<Job> jobs_;
};

struct Destination {
  Destination(std::string domain_in, Series& metrics_in)
      : domain(std::move(domain_in)), metrics(&metrics_in), pending(metrics_in) {}
  std::string domain;
  Series* metrics;  // looked up once per destination, never per message
  ReadyQueue pending;
  int sessions = 0;   // opening or open
  int connected = 0;  // past the greeting and EHLO
  std::shared_ptr<Throttle> throttle;        // the shaping key's limits; null until routed
  bool routing = false;                      // MX lookup for the key under way
  std::unique_ptr<asio::steady_timer> wake;  // start_sessions() again when the throttle allows
  std::int64_t wake_at_ms = 0;               // 0 = timer not armed
  int wake_waits = 0;                        // handlers outstanding: keep the destination alive
  int throttled_connects = 0;                // connects refused with a throttling reply in a row
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;
};

void log_crash(const std::shared_ptr<spdlog::logger>& log, const char* event, std::size_t worker,
               std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log->error("event={} worker={} error=\"{}\"", event, worker, e.what());
  }
}

}  // namespace

struct Worker::Impl {
  Impl(WorkerShared& shared_in, std::size_t index_in);

  // Destinations and sessions.
  void enqueue(Job&& job);
  void route(Destination& dest);
  static asio::awaitable<void> route_by_mx(Impl* self, Destination* dest);
  void routed(Destination& dest, std::shared_ptr<Throttle> throttle);
  void wake_at(Destination& dest, std::int64_t at_ms);
  void hand_back(Destination& dest, std::int64_t due_ms);
  void give_back(Job&& job, std::int64_t due_ms);
  // Jobs of paused or cancelled campaigns go back to the store unsent; true if any did.
  bool release_held(Destination& dest);
  // An operator suspension of the destination: its queue goes back, due at the end.
  bool operator_held(Destination& dest);
  void erase_if_idle(Destination& dest);
  void start_sessions(Destination& dest);
  static asio::awaitable<void> run_session(Impl* self, Destination* dest);
  void session_ended(Destination& dest);

  // Outcomes.
  // `throttle_reply`: a throttling reply past the requeue limit (outcome.h, decide_outcome).
  void finish(Destination& dest, Job& job, const Classification& c, queue::Attempt attempt,
              bool throttle_reply = false);
  void observe_breakers(Destination& dest, const Job& job, const queue::Status& status);
  void fail_queue(Destination& dest, const SiteFailure& failure);
  void fail_destination_dns(Destination& dest, dns::Status status, std::string_view detail);
  void fail_destination_connect(Destination& dest, const std::vector<smtp::ConnectFailure>& failures,
                                std::string_view tls_label);

  WorkerShared& shared;
  std::size_t index;
  std::shared_ptr<spdlog::logger> log = kurier::log::get("engine");
  const bounce::Rules& bounce_rules = bounce_rules_or_builtin(shared.config);  // [bounce] rules
  // Declared before io: coroutine frames still suspended when the worker is torn down
  // are destroyed with io and may touch their Destination (and dispatcher) on the way out.
  std::unordered_map<std::string, std::unique_ptr<Destination>> destinations;
  std::unique_ptr<Dispatcher> dispatcher;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  std::unique_ptr<dns::MxResolver> resolver;
  std::atomic<std::size_t> active_sessions{0};
  std::thread thread;
};

// The scheduler's side of one session (engine/delivery/dispatcher.h).
class Slot final : public SessionSlot {
 public:
  Slot(Worker::Impl& worker, Destination& dest) : w_(worker), dest_(dest) {}
  ~Slot() override {
    if (connected_) --dest_.connected;
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  const std::string& domain() const override { return dest_.domain; }
  const ShapingLimits& limits() const override { return dest_.throttle->limits(); }
  std::int64_t now() const override { return w_.shared.clock(); }
  bool wanted() const override { return !dest_.pending.empty() && !w_.shared.stopping; }

  void dns_failed(dns::Status status, std::string_view detail) override {
    w_.fail_destination_dns(dest_, status, detail);
  }
  void connect_failed(const std::vector<smtp::ConnectFailure>& failures, std::string_view tls_label) override {
    w_.fail_destination_connect(dest_, failures, tls_label);
  }
  void connected() override {
    ++dest_.connected;
    dest_.throttled_connects = 0;
    connected_ = true;
  }

  asio::awaitable<std::optional<Job>> next_message() override {
    Throttle& throttle = *dest_.throttle;
    // Paused campaigns and operator suspensions take effect between two messages.
    w_.release_held(dest_);
    if (w_.shared.shaper.held_until(dest_.domain, throttle.provider(), w_.shared.clock()) != 0) co_return std::nullopt;
    if (!wanted() || sent_ >= throttle.limits().messages_per_connection) co_return std::nullopt;
    // Shaping: give way when the key was slowed below the connections open or
    // suspended, and pace each message to the key's rate (shared with every domain of
    // the provider).
    const std::int64_t now = w_.shared.clock();
    const auto slot = throttle.reserve_message(now, kMaxPaceWaitMs);
    if (!slot) co_return std::nullopt;
    if (*slot > now) {
      asio::steady_timer pace(w_.io, std::chrono::milliseconds(*slot - now));
      co_await pace.async_wait(asio::use_awaitable);
      w_.release_held(dest_);
      if (!wanted()) co_return std::nullopt;
    }
    dest_.metrics->add_in_flight(1);
    co_return dest_.pending.pop_front();
  }

  void transaction_started() override {
    ++w_.shared.messages_sent;
    w_.shared.metrics.global().messages_attempted.fetch_add(1, std::memory_order_relaxed);
  }

  bool transaction_done(Job&& job, const smtp::Reply& reply, smtp::Phase error_phase,
                        queue::Attempt attempt) override {
    dest_.metrics->add_in_flight(-1);
    // A throttling reply (421 "too many connections", 4.7.28, TS01, ...) slows or
    // suspends the whole key; the recipient was not at fault: back to the queue,
    // unless that has happened too often already.
    Throttle& throttle = *dest_.throttle;
    const bool throttling = reply.code >= 400 && throttle.on_reply(reply.code, reply.enhanced, reply.text,
                                                                    w_.shared.clock()) != ThrottleAction::none;
    if (throttling) {
      dest_.metrics->count_throttled();
      w_.log->debug("event=throttled domain={} key={} reply=\"{} {} {}\"", dest_.domain, throttle.key(), reply.code,
                    reply.enhanced, reply.text);
    }
    const ReplyReaction reaction =
        reply_step(throttling, job.throttled, refused_before_mail(reply.code, error_phase), sent_);
    if (throttling) ++job.throttled;
    if (reaction.step == ReplyStep::requeue) {
      dest_.pending.push_front(std::move(job));
      return false;
    }
    ++sent_;
    const Classification c = classify_reply(reply.code, reply.enhanced, reply.text, w_.bounce_rules);
    w_.finish(dest_, job, c, std::move(attempt), reaction.throttle_reply);
    return true;
  }

  void record(Job&& job, const Classification& classification, queue::Attempt attempt) override {
    dest_.metrics->add_in_flight(-1);
    w_.finish(dest_, job, classification, std::move(attempt));
  }

 private:
  Worker::Impl& w_;
  Destination& dest_;
  int sent_ = 0;  // transactions recorded on this connection
  bool connected_ = false;
};

Worker::Impl::Impl(WorkerShared& shared_in, std::size_t index_in) : shared(shared_in), index(index_in) {
  dns::ResolverOptions dns_options;
  dns_options.servers = shared.config.dns.servers;
  dns_options.timeout = shared.config.dns.timeout;
  resolver = dns::make_cares_resolver(io, dns_options);
  dispatcher = shared.dispatchers.make(io, *resolver);
}

void Worker::Impl::enqueue(Job&& job) {
  auto& slot = destinations[job.domain];
  if (!slot) slot = std::make_unique<Destination>(job.domain, shared.metrics.domain(job.domain));
  slot->pending.push_back(std::move(job));
  start_sessions(*slot);
}

// The destination's shaping key: at once from its domain, or from its MX hosts when
// a provider rule matches by MX (then every domain hosted there shares the limits).
void Worker::Impl::route(Destination& dest) {
  if (dest.throttle || dest.routing) return;
  if (!shared.shaper.needs_mx(dest.domain)) {
    routed(dest, shared.shaper.throttle_for(dest.domain, {}));
    start_sessions(dest);  // routed synchronously: nothing else would start the first job
    return;
  }
  dest.routing = true;
  asio::co_spawn(io, route_by_mx(this, &dest),
                 [this](std::exception_ptr error) { log_crash(log, "route_crashed", index, error); });
}

asio::awaitable<void> Worker::Impl::route_by_mx(Impl* self, Destination* dest) {
  dns::MxResult mx = co_await resolve_mx(*self->resolver, dest->domain);
  std::vector<std::string> hosts;
  // A failed lookup routes by domain; the session then meets the same failure and
  // records it.
  if (mx.status == dns::Status::ok)
    for (const auto& host : mx.hosts) hosts.push_back(host.name);
  dest->routing = false;
  self->routed(*dest, self->shared.shaper.throttle_for(dest->domain, hosts));
  self->start_sessions(*dest);
  self->erase_if_idle(*dest);
}

void Worker::Impl::routed(Destination& dest, std::shared_ptr<Throttle> throttle) {
  dest.throttle = std::move(throttle);
  if (!dest.throttle->provider().empty())
    shared.metrics.link_provider(*dest.metrics, shared.metrics.provider(dest.throttle->provider()));
}

// Runs start_sessions() again at `at_ms` (the earliest of several requests wins).
void Worker::Impl::wake_at(Destination& dest, std::int64_t at_ms) {
  if (dest.wake_at_ms != 0 && dest.wake_at_ms <= at_ms) return;
  if (!dest.wake) dest.wake = std::make_unique<asio::steady_timer>(io);
  dest.wake_at_ms = at_ms;
  dest.wake->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(0, at_ms - shared.clock())));
  ++dest.wake_waits;
  dest.wake->async_wait([this, d = &dest](const boost::system::error_code& ec) {
    --d->wake_waits;
    if (ec == asio::error::operation_aborted) return;  // re-armed: the newer wait runs
    d->wake_at_ms = 0;
    start_sessions(*d);
    erase_if_idle(*d);
  });
}

// Recipients the throttle will not let go for a long time go back to the store, due
// when it will; no attempt is logged or counted (they were never tried).
void Worker::Impl::hand_back(Destination& dest, std::int64_t due_ms) {
  log->debug("event=throttle_hand_back domain={} key={} recipients={} due_ms={}", dest.domain, dest.throttle->key(),
             dest.pending.size(), due_ms);
  while (!dest.pending.empty()) give_back(dest.pending.pop_front(), due_ms);
}

// Back to the store with its status unchanged but for the due time: no attempt.
void Worker::Impl::give_back(Job&& job, std::int64_t due_ms) {
  queue::Outcome outcome;
  outcome.key = job.recipient.key;
  outcome.previous_due_ms = job.recipient.status.next_attempt_ms;
  outcome.status = job.recipient.status;
  outcome.status.next_attempt_ms = due_ms;
  shared.outcomes.report(std::move(outcome));
}

bool Worker::Impl::release_held(Destination& dest) {
  if (!shared.control.any_held()) return false;
  auto held = dest.pending.take_if([&](const Job& job) { return shared.control.held(job.recipient.key.campaign); });
  for (auto& job : held) {
    const std::int64_t due = job.recipient.status.next_attempt_ms;
    give_back(std::move(job), due);
  }
  return !held.empty();
}

bool Worker::Impl::operator_held(Destination& dest) {
  const std::int64_t now = shared.clock();
  const std::int64_t until = shared.shaper.held_until(dest.domain, dest.throttle->provider(), now);
  if (until <= now) return false;
  if (!dest.pending.empty()) {
    log->info("event=operator_hold domain={} recipients={} until_ms={}", dest.domain, dest.pending.size(), until);
    hand_back(dest, until);
  }
  return true;
}

void Worker::Impl::erase_if_idle(Destination& dest) {
  if (!dest.pending.empty() || dest.sessions > 0 || dest.routing || dest.wake_at_ms != 0 || dest.wake_waits > 0)
    return;
  const std::string key = dest.domain;  // dest dies with the erase
  destinations.erase(key);              // bounded memory with many domains
}

void Worker::Impl::start_sessions(Destination& dest) {
  if (!dest.throttle) {
    route(dest);                 // at once, or later from the MX lookup
    if (!dest.throttle) return;  // route_by_mx() calls back when it knows
  }
  // One more session per kPendingPerSession queued messages: a handful of messages
  // share one connection (pipelined, reused) instead of opening one each.
  release_held(dest);
  if (operator_held(dest)) return;
  auto wanted = [&] { return (dest.pending.size() + kPendingPerSession - 1) / kPendingPerSession; };
  while (!shared.stopping && static_cast<std::size_t>(dest.sessions) < wanted()) {
    const std::int64_t now = shared.clock();
    Throttle::Gate gate = dest.throttle->try_open_connection(now);
    if (!gate.ok) {
      // Every slot taken and some by our own sessions: session_ended() comes back
      // here when one ends, no poll needed; only a reduced limit growing back adds one.
      if (gate.slots_full && dest.sessions > 0) {
        if (gate.limit_grows_at_ms != 0) wake_at(dest, gate.limit_grows_at_ms);
        break;
      }
      if (gate.retry_at_ms - now > kHoldInMemoryMs && dest.sessions == 0) hand_back(dest, gate.retry_at_ms);
      else wake_at(dest, gate.retry_at_ms);
      break;
    }
    ++dest.sessions;
    ++active_sessions;
    ++shared.sessions;
    dest.metrics->connection_opened();
    shared.metrics.global().sessions_opened.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(io, run_session(this, &dest),
                   [this](std::exception_ptr error) { log_crash(log, "session_crashed", index, error); });
  }
}

// One session for a destination, run by the dispatcher through a slot.
asio::awaitable<void> Worker::Impl::run_session(Impl* self, Destination* dest) {
  {
    Slot slot(*self, *dest);
    co_await self->dispatcher->run_session(slot);
  }
  self->session_ended(*dest);
}

void Worker::Impl::session_ended(Destination& dest) {
  --dest.sessions;
  --active_sessions;
  --shared.sessions;
  dest.metrics->connection_closed();
  dest.throttle->connection_closed();
  if (!dest.pending.empty() && !shared.stopping) start_sessions(dest);
  erase_if_idle(dest);
}

// Turns a classification into the recipient's new status and hands it to the writer.
// `dest` is routed (its throttle set) before any of its jobs is tried.
void Worker::Impl::finish(Destination& dest, Job& job, const Classification& c, queue::Attempt attempt,
                          bool throttle_reply) {
  const RecipientHistory history{job.recipient.key, job.recipient.status, job.campaign->campaign.created_ms};
  Decision decision = decide_outcome(history, c, std::move(attempt), throttle_reply, dest.throttle->limits());
  queue::Outcome& outcome = decision.outcome;
  if (decision.greylisted) dest.metrics->count_greylisted();
  // A hard bounce suppresses the address in the same synced batch as the outcome.
  outcome.address_update = address_update_for(outcome.status, job.recipient.address, shared.config.bounce.soft_limit);
  switch (outcome.status.state) {
    case queue::State::delivered: dest.metrics->count_delivered(); break;
    case queue::State::deferred: dest.metrics->count_deferred(); break;
    case queue::State::bounced: dest.metrics->count_bounced(bounce::category_from(outcome.status.category)); break;
    case queue::State::expired: dest.metrics->count_expired(); break;
    default: break;
  }
  observe_breakers(dest, job, outcome.status);
  shared.outcomes.report(std::move(outcome));
}

// A final outcome counts towards the campaign's breakers; a trip pauses the campaign
// (recorded in the queue: this waits for one synced write, once per trip).
void Worker::Impl::observe_breakers(Destination& dest, const Job& job, const queue::Status& status) {
  const auto campaign = job.recipient.key.campaign;
  const std::string& provider = dest.throttle->provider().empty() ? dest.domain : dest.throttle->provider();
  auto finding = shared.breakers.observe(campaign, provider, status.state, status.category, status.code);
  if (!finding) return;
  log->warn("event=breaker_tripped campaign={} finding=\"{}\"", job.campaign->campaign.name, *finding);
  shared.metrics.global().breaker_trips.fetch_add(1, std::memory_order_relaxed);
  try {
    shared.control.pause(campaign, *finding, "breaker", shared.clock());
  } catch (...) {
    shared.outcomes.fail(std::current_exception());
  }
}

// Every recipient queued for the destination gets the site failure.
void Worker::Impl::fail_queue(Destination& dest, const SiteFailure& failure) {
  while (!dest.pending.empty()) {
    Job job = dest.pending.pop_front();
    queue::Attempt attempt = failure.attempt;
    attempt.time_ms = shared.clock();
    finish(dest, job, failure.classification, std::move(attempt));
  }
}

void Worker::Impl::fail_destination_dns(Destination& dest, dns::Status status, std::string_view detail) {
  shared.metrics.global().dns_failures.fetch_add(1, std::memory_order_relaxed);
  log->debug("event=dns_failure domain={} status={} detail=\"{}\"", dest.domain, dns::to_string(status), detail);
  fail_queue(dest, dns_site_failure(status, detail));
}

void Worker::Impl::fail_destination_connect(Destination& dest, const std::vector<smtp::ConnectFailure>& failures,
                                            std::string_view tls_label) {
  shared.metrics.global().connect_failures.fetch_add(1, std::memory_order_relaxed);
  // Refused with a throttling reply (a 421 "too many connections" greeting): the
  // key slows down and the queue waits for the throttle, up to a point.
  bool throttling = false;
  if (!failures.empty() && failures.back().reply.code >= 400) {
    const auto& reply = failures.back().reply;
    if (dest.throttle->on_reply(reply.code, reply.enhanced, reply.text, shared.clock()) != ThrottleAction::none) {
      dest.metrics->count_throttled();
      ++dest.throttled_connects;
      throttling = true;
    }
  }
  // A session of this destination got through: leave the queue to it. Otherwise
  // the site is down: defer everything queued for it now rather than letting new
  // sessions fail one after another.
  if (!defer_queue_after_connect_failure(throttling, dest.throttled_connects, dest.connected)) return;
  const SiteFailure failure = connect_site_failure(failures, tls_label, bounce_rules);
  log->debug("event=connect_failed domain={} detail=\"{}\"", dest.domain, failure.attempt.text);
  fail_queue(dest, failure);
}

Worker::Worker(WorkerShared& shared, std::size_t index) : impl_(std::make_unique<Impl>(shared, index)) {}

Worker::~Worker() = default;

void Worker::start() {
  impl_->thread = std::thread([impl = impl_.get()] {
    try {
      impl->io.run();
    } catch (...) {
      impl->shared.outcomes.fail(std::current_exception());
    }
  });
}

void Worker::post(Job&& job) {
  asio::post(impl_->io, [impl = impl_.get(), job = std::move(job)]() mutable { impl->enqueue(std::move(job)); });
}

std::size_t Worker::active_sessions() const { return impl_->active_sessions.load(); }

void Worker::shutdown() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Timers must go before io (destinations outlive it, see Impl).
  for (auto& [domain, dest] : impl_->destinations) dest->wake.reset();
}

}  // namespace kurier::engine
