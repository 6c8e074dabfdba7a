// The delivery engine's front (engine/delivery/delivery.h): the feeder on the caller's
// thread (due recipients from the store into the in-flight window, to the worker of
// their domain), the workers (engine/delivery/worker.h), and the result writer on its own
// thread (group commit). A store failure stops everything and is rethrown from run();
// nothing recorded is ever lost.
#include "engine/delivery/delivery.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/log.h"
#include "engine/delivery/admin.h"
#include "engine/delivery/breaker.h"
#include "engine/delivery/campaign_control.h"
#include "engine/delivery/compose.h"
#include "engine/delivery/dispatcher.h"
#include "engine/delivery/smtp_dispatcher.h"
#include "engine/delivery/worker.h"
#include "engine/events/campaign_events.h"
#include "engine/intake/address.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {
namespace {

// How many due recipients the feeder takes from the store per scan: large enough to
// amortise the scan, small next to the window so one scan never stalls the loop.
constexpr std::size_t kDueBatch = 2000;
// The feeder sleeps at most this long when idle, so new work and the done()
// condition are noticed promptly.
constexpr std::chrono::milliseconds kIdlePoll{50};
// How often an idle feeder rescans the schedule from the start (see run()).
constexpr std::chrono::seconds kRescanInterval{1};
// After stop(), open transactions get this long to finish before workers are torn down.
constexpr std::chrono::seconds kStopGrace{15};
// Largest batch one record() call writes; bounds the writer's memory and latency.
constexpr std::size_t kMaxRecordBatch = 20000;

struct RecipientKeyHash {
  std::size_t operator()(const queue::RecipientKey& k) const noexcept {
    return std::hash<std::uint64_t>{}((std::uint64_t{k.campaign} << 32) | k.recipient);
  }
};

}  // namespace

struct Delivery::Impl final : OutcomeSink {
  Impl(queue::Store& store_in, const Config& config_in, Clock clock_in,
       std::unique_ptr<DispatcherFactory> dispatchers_in)
      : store(store_in), config(config_in), clock(std::move(clock_in)), dispatchers(std::move(dispatchers_in)) {
    for (auto& [scope, hold] : load_holds(store, clock())) shaper.hold(scope, hold);
    // A resumed campaign's entries lie behind the feeder's cursor: scan from the start.
    control.on_change([this](queue::CampaignId id, const ControlState& state) {
      log_control(id, state);
      if (state.state == RunState::running) {
        breakers.reset(id);
        rescan = true;
      }
      flight_cv.notify_all();
    });
  }

  void run(const std::function<bool()>& done);
  void start();  // workers and the result writer
  void feed(const std::function<bool()>& done);
  void shut_down();
  void dispatch(queue::Recipient&& recipient);
  std::shared_ptr<const CampaignContext> context_for(queue::CampaignId id);
  void report(queue::Outcome&& outcome) override;  // any worker thread
  void writer_loop();
  void on_recorded(const std::vector<queue::Outcome>& batch);
  void end_cancelled(std::vector<queue::Outcome>& batch);
  void log_control(queue::CampaignId id, const ControlState& state);
  struct AdminRequest {
    AdminChanges changes;
    std::promise<std::size_t> done;
  };
  bool apply_admin(AdminRequest& request);  // false: the store failed (request failed with it)
  void close_writer(std::exception_ptr error, std::vector<std::shared_ptr<AdminRequest>>& taken);
  std::exception_ptr failure_of_writer();
  std::vector<std::string> take_addresses(const std::vector<queue::Outcome>& batch);
  void fail(std::exception_ptr error) override;

  queue::Store& store;
  const Config& config;
  Clock clock;
  std::shared_ptr<spdlog::logger> log = kurier::log::get("engine");
  // Before the workers: sessions update their series until the workers are gone.
  Metrics metrics;
  // Limits per destination key, shared by every worker (engine/delivery/shaping/shaping.h).
  Shaper shaper{config.shaping, clock};
  CampaignControl control{store};
  Breakers breakers{config.breaker};
  std::atomic<bool> rescan{false};  // the feeder starts its next scan from the head
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> delivered{0}, deferred{0}, bounced{0}, expired{0}, sessions{0}, messages_sent{0};
  // Before the workers: what their sessions share (signing pool, MTA-STS cache), made
  // into one dispatcher per worker. drain() runs before the workers stop.
  std::unique_ptr<DispatcherFactory> dispatchers;
  WorkerShared shared{config,  clock,    shaper,   metrics,  *dispatchers, *this,
                      control, breakers, stopping, sessions, messages_sent};
  std::vector<std::unique_ptr<Worker>> workers;
  std::unordered_map<queue::CampaignId, std::shared_ptr<const CampaignContext>> contexts;  // feeder only

  // In-flight window: keys dispatched whose outcome is not durable yet.
  mutable std::mutex flight_mutex;
  std::condition_variable flight_cv;  // signalled when outcomes become durable
  std::unordered_set<queue::RecipientKey, RecipientKeyHash> in_flight;
  // Keys recorded since the current due() scan began: that scan's snapshot may still
  // show them as due, so they must not be dispatched again (see run()).
  std::unordered_set<queue::RecipientKey, RecipientKeyHash> recorded_during_scan;
  std::unordered_map<queue::CampaignId, std::uint64_t> in_flight_by_campaign;
  // With an event log: the address of each key in flight (outcomes carry only the key).
  CampaignEvents* events = nullptr;
  std::unordered_map<queue::RecipientKey, std::string, RecipientKeyHash> addresses;

  // Result writer.
  std::mutex results_mutex;
  std::condition_variable results_cv;
  std::vector<queue::Outcome> results;
  std::vector<std::shared_ptr<AdminRequest>> admin_requests;
  bool writer_stop = false;
  bool writer_running = false;  // guarded by results_mutex: admin changes go through the writer
  std::thread writer;

  std::exception_ptr failure;  // guarded by flight_mutex
};

std::shared_ptr<const CampaignContext> Delivery::Impl::context_for(queue::CampaignId id) {
  auto it = contexts.find(id);
  if (it != contexts.end()) return it->second;
  auto campaign = store.campaign(id);
  if (!campaign) return nullptr;
  return contexts.emplace(id, make_campaign_context(*campaign)).first->second;
}

void Delivery::Impl::dispatch(queue::Recipient&& recipient) {
  auto ctx = context_for(recipient.key.campaign);
  if (!ctx) return;  // campaign vanished: cannot happen with a consistent store
  {
    std::lock_guard lock(flight_mutex);
    if (recorded_during_scan.count(recipient.key)) return;  // stale snapshot: already done
    if (control.held(recipient.key.campaign)) return;       // paused since the scan began
    if (!in_flight.insert(recipient.key).second) return;   // already on its way
    if (events) addresses.emplace(recipient.key, recipient.address);
    ++in_flight_by_campaign[recipient.key.campaign];
  }
  Job job;
  job.domain = ascii_domain_of(recipient.address);  // A-labels: DNS, shaping and metrics
  job.recipient = std::move(recipient);
  job.campaign = std::move(ctx);
  std::size_t index = std::hash<std::string>{}(job.domain) % workers.size();
  workers[index]->post(std::move(job));
}

void Delivery::Impl::report(queue::Outcome&& outcome) {
  {
    std::lock_guard lock(results_mutex);
    results.push_back(std::move(outcome));
  }
  results_cv.notify_one();
}

void Delivery::Impl::writer_loop() {
  std::vector<queue::Outcome> batch;
  std::vector<std::shared_ptr<AdminRequest>> admin;
  for (;;) {
    {
      std::unique_lock lock(results_mutex);
      results_cv.wait(lock, [&] { return !results.empty() || !admin_requests.empty() || writer_stop; });
      if (results.empty() && admin_requests.empty() && writer_stop) {
        writer_running = false;  // later operator changes go straight to the store
        return;
      }
      admin.swap(admin_requests);
      if (results.size() <= kMaxRecordBatch) {
        batch.swap(results);
      } else {
        batch.assign(std::make_move_iterator(results.begin()),
                     std::make_move_iterator(results.begin() + static_cast<std::ptrdiff_t>(kMaxRecordBatch)));
        results.erase(results.begin(), results.begin() + static_cast<std::ptrdiff_t>(kMaxRecordBatch));
      }
    }
    try {
      end_cancelled(batch);
      if (!batch.empty()) store.record(batch);
    } catch (...) {
      close_writer(std::current_exception(), admin);
      return;
    }
    on_recorded(batch);
    batch.clear();
    for (std::size_t i = 0; i < admin.size(); ++i) {
      if (apply_admin(*admin[i])) continue;
      admin.erase(admin.begin(), admin.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      close_writer(failure_of_writer(), admin);
      return;
    }
    admin.clear();
  }
}

// The store failed under the writer: the engine stops, and every operator change not
// yet applied (taken, or still waiting) fails with the store's error.
void Delivery::Impl::close_writer(std::exception_ptr error, std::vector<std::shared_ptr<AdminRequest>>& taken) {
  fail(error);
  std::lock_guard lock(results_mutex);
  writer_running = false;
  for (auto& request : taken) request->done.set_exception(error);
  for (auto& request : admin_requests) request->done.set_exception(error);
  admin_requests.clear();
}

std::exception_ptr Delivery::Impl::failure_of_writer() {
  std::lock_guard lock(flight_mutex);
  return failure;
}

// A campaign paused, resumed or cancelled (by the operator or a breaker), as an
// `admin` event of the campaign (no recipient).
void Delivery::Impl::log_control(queue::CampaignId id, const ControlState& state) {
  if (!events) return;
  const std::string_view action = state.state == RunState::running   ? "resume"
                                  : state.state == RunState::paused ? "pause"
                                                                    : "cancel";
  const std::string reason = state.state == RunState::running ? "" : state.reason + " (by " + state.by + ")";
  events->operator_action(id, action, reason, clock());
}

// A recipient of a cancelled campaign that comes back unfinished (in flight when the
// campaign was cancelled, or handed back unsent) ends `cancelled` instead.
void Delivery::Impl::end_cancelled(std::vector<queue::Outcome>& batch) {
  if (!control.any_held()) return;
  for (auto& o : batch) {
    if (queue::is_final(o.status.state) || !control.cancelled(o.key.campaign)) continue;
    o.status.state = queue::State::cancelled;
    o.status.next_attempt_ms = 0;
    o.status.category.clear();
    o.status.reason = control.state(o.key.campaign).reason;
    if (o.status.reason.empty()) o.status.reason = "cancelled";
  }
}

// On the writer thread, so no delivery outcome is recorded between the check and the
// write: changes for recipients in flight or changed since selection are dropped.
bool Delivery::Impl::apply_admin(AdminRequest& request) {
  AdminChanges keep;
  try {
    auto& changes = request.changes;
    for (std::size_t i = 0; i < changes.outcomes.size(); ++i) {
      const queue::Outcome& c = changes.outcomes[i];
      {
        std::lock_guard lock(flight_mutex);
        if (in_flight.count(c.key)) continue;
      }
      auto now = store.recipient(c.key);
      if (!now || queue::is_final(now->status.state) || now->status.next_attempt_ms != c.previous_due_ms) continue;
      keep.outcomes.push_back(std::move(changes.outcomes[i]));
      keep.addresses.push_back(std::move(changes.addresses[i]));
    }
    apply_offline(store, {keep.outcomes, {}}, nullptr, clock());
  } catch (...) {
    request.done.set_exception(std::current_exception());
    fail(std::current_exception());
    return false;
  }
  if (events) {  // on_recorded logs them with their addresses
    std::lock_guard lock(flight_mutex);
    for (std::size_t i = 0; i < keep.outcomes.size(); ++i)
      addresses.insert_or_assign(keep.outcomes[i].key, std::move(keep.addresses[i]));
  }
  on_recorded(keep.outcomes);
  request.done.set_value(keep.outcomes.size());
  return true;
}

void Delivery::Impl::on_recorded(const std::vector<queue::Outcome>& batch) {
  metrics.global().outcomes_recorded.fetch_add(batch.size(), std::memory_order_relaxed);
  metrics.global().record_batches.fetch_add(1, std::memory_order_relaxed);
  for (const auto& o : batch) {
    switch (o.status.state) {
      case queue::State::delivered: ++delivered; break;
      case queue::State::deferred: ++deferred; break;
      case queue::State::bounced: ++bounced; break;
      case queue::State::expired: ++expired; break;
      default: break;
    }
  }
  if (events) {  // logged before the keys leave the window: status never runs ahead of the log
    std::vector<std::string> batch_addresses;
    {
      std::lock_guard lock(flight_mutex);
      batch_addresses = take_addresses(batch);
    }
    events->recorded(batch, batch_addresses, clock());
  }
  {
    std::lock_guard lock(flight_mutex);
    for (const auto& o : batch) {
      recorded_during_scan.insert(o.key);
      if (in_flight.erase(o.key)) {
        auto it = in_flight_by_campaign.find(o.key.campaign);
        if (it != in_flight_by_campaign.end() && --it->second == 0) in_flight_by_campaign.erase(it);
      }
    }
  }
  flight_cv.notify_all();
}

// The addresses of the batch's keys, in order; they leave the map (flight_mutex held).
std::vector<std::string> Delivery::Impl::take_addresses(const std::vector<queue::Outcome>& batch) {
  std::vector<std::string> out;
  out.reserve(batch.size());
  for (const auto& o : batch) {
    auto it = addresses.find(o.key);
    out.push_back(it == addresses.end() ? std::string() : std::move(it->second));
    if (it != addresses.end()) addresses.erase(it);
  }
  return out;
}

void Delivery::Impl::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(flight_mutex);
    if (!failure) failure = error;
  }
  stopping = true;
  flight_cv.notify_all();
}

void Delivery::Impl::run(const std::function<bool()>& done) {
  start();
  try {
    feed(done);
  } catch (...) {
    fail(std::current_exception());
  }
  shut_down();
  std::lock_guard lock(flight_mutex);
  if (failure) std::rethrow_exception(failure);
}

void Delivery::Impl::start() {
  // Throttle gauges go to the series ops look at: the provider's, or the domain's.
  shaper.on_new_throttle([this](Throttle& throttle) {
    if (!throttle.provider().empty()) return throttle.attach(&metrics.provider(throttle.provider()));
    std::string_view key = throttle.key();
    if (key.starts_with("domain:")) key.remove_prefix(7);
    throttle.attach(&metrics.domain(key));
  });
  std::size_t worker_count = config.engine.workers > 0 ? static_cast<std::size_t>(config.engine.workers)
                                                : std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < worker_count; ++i) workers.push_back(std::make_unique<Worker>(shared, i));
  for (auto& w : workers) w->start();
  {
    std::lock_guard lock(results_mutex);
    writer_running = true;
  }
  writer = std::thread([this] { writer_loop(); });
}

// The feeder, until done() or stop(). The cursor makes each scan start where the last one ended, so entries in flight
  // are not read again and again. Entries can appear behind it (a campaign committed
  // while we deliver has due = its creation time), so an idle feeder rescans from the
  // start now and then; in-flight keys are skipped, and keys recorded while a scan ran
  // are skipped too because the scan's snapshot may predate their new state.
void Delivery::Impl::feed(const std::function<bool()>& done) {
  queue::ScheduleCursor cursor;
  auto last_rescan = std::chrono::steady_clock::now();
  while (!stopping) {
    std::size_t flying;
    {
      std::lock_guard lock(flight_mutex);
      flying = in_flight.size();
      recorded_during_scan.clear();
    }
    std::size_t room = config.engine.window > flying ? config.engine.window - flying : 0;
    std::size_t taken = 0;
    if (rescan.exchange(false)) cursor.reset();
    if (room > 0) {
      const auto held = control.held_list();
      auto due = store.due(clock(), std::min(room, kDueBatch), cursor, *held);
      taken = due.size();
      for (auto& r : due) dispatch(std::move(r));
    }
    if (taken > 0) continue;
    if (std::chrono::steady_clock::now() - last_rescan >= kRescanInterval) {
      last_rescan = std::chrono::steady_clock::now();
      if (!cursor.after.empty()) {
        cursor.reset();
        continue;
      }
    }
    if (done()) break;
    std::unique_lock lock(flight_mutex);
    flight_cv.wait_for(lock, kIdlePoll);
  }
}

// Lets open transactions finish (up to kStopGrace), then makes every outcome durable.
void Delivery::Impl::shut_down() {
  stopping = true;
  const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
  auto busy = [&] {
    for (auto& w : workers)
      if (w->active_sessions() > 0) return true;
    return false;
  };
  while (busy() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // Background work of the sessions (signatures) posts to the workers: let it finish
  // while the workers' io_contexts still exist.
  dispatchers->drain();
  for (auto& w : workers) w->shutdown();
  {
    std::lock_guard lock(results_mutex);
    writer_stop = true;
  }
  results_cv.notify_one();
  if (writer.joinable()) writer.join();
  workers.clear();
}

Delivery::Delivery(queue::Store& store, const Config& config, Clock clock)
    : Delivery(store, config, clock, make_smtp_dispatcher_factory(config, clock)) {}

Delivery::Delivery(queue::Store& store, const Config& config, Clock clock,
                   std::unique_ptr<DispatcherFactory> dispatchers)
    : impl_(std::make_unique<Impl>(store, config, std::move(clock), std::move(dispatchers))) {}

Delivery::~Delivery() = default;

void Delivery::run(const std::function<bool()>& done) { impl_->run(done); }

void Delivery::set_events(CampaignEvents* events) { impl_->events = events; }

void Delivery::stop() {
  impl_->stopping = true;
  impl_->flight_cv.notify_all();
}

Metrics& Delivery::metrics() { return impl_->metrics; }

DeliveryProgress Delivery::progress() const {
  DeliveryProgress p;
  p.delivered = impl_->delivered;
  p.deferred = impl_->deferred;
  p.bounced = impl_->bounced;
  p.expired = impl_->expired;
  p.sessions = impl_->sessions;
  p.messages_sent = impl_->messages_sent;
  std::lock_guard lock(impl_->flight_mutex);
  p.in_flight = impl_->in_flight.size();
  return p;
}

CampaignControl& Delivery::control() { return impl_->control; }

Breakers& Delivery::breakers() { return impl_->breakers; }

std::size_t Delivery::apply_admin(AdminChanges changes) {
  auto request = std::make_shared<Impl::AdminRequest>();
  request->changes = std::move(changes);
  auto done = request->done.get_future();
  {
    std::lock_guard lock(impl_->results_mutex);
    if (impl_->writer_stop || !impl_->writer_running) {
      // No engine running (before run() or after it returned): nothing is in flight.
      return apply_offline(impl_->store, request->changes, impl_->events, impl_->clock());
    }
    impl_->admin_requests.push_back(request);
  }
  impl_->results_cv.notify_one();
  return done.get();
}

void Delivery::suspend(const std::string& scope, std::int64_t until_ms, const std::string& reason) {
  persist_hold(impl_->store, scope, {until_ms, reason});
  impl_->shaper.hold(scope, {until_ms, reason});
}

bool Delivery::unsuspend(const std::string& scope) {
  erase_hold(impl_->store, scope);
  return impl_->shaper.release(scope);
}

std::vector<OperatorHold> Delivery::holds() const {
  std::vector<OperatorHold> out;
  for (const auto& [scope, hold] : impl_->shaper.holds(impl_->clock())) out.push_back({scope, hold.until_ms, hold.reason});
  return out;
}

std::uint64_t Delivery::in_flight(queue::CampaignId campaign) const {
  std::lock_guard lock(impl_->flight_mutex);
  auto it = impl_->in_flight_by_campaign.find(campaign);
  return it == impl_->in_flight_by_campaign.end() ? 0 : it->second;
}

}  // namespace kurier::engine
