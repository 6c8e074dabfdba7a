// The delivery engine: feeder (caller's thread), workers (one io_context and
// thread each, sessions as coroutines), result writer (own thread, group commit).
// Network failures become deferrals; a store failure stops everything and is
// rethrown from run(); nothing recorded is ever lost.
#include "engine/delivery/delivery.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/asio.h"
#include "common/log.h"
#include "dns/mx_resolver.h"
#include "dkim/signer.h"
#include "engine/intake/address.h"
#include "engine/bounces/apply.h"
#include "engine/intake/campaign.h"
#include "engine/delivery/classify.h"
#include "engine/ops/metrics.h"
#include "engine/delivery/mta_sts.h"
#include "engine/intake/template.h"
#include "engine/delivery/tls_policy.h"
#include "engine/core/verp.h"
#include "smtp/client.h"

namespace kurier::engine {
namespace {

// How many due recipients the feeder takes from the store per scan: large enough to
// amortise the scan, small next to the window so one scan never stalls the loop.
constexpr std::size_t kDueBatch = 2000;
// The feeder sleeps at most this long when idle, so new work and the done()
// condition are noticed promptly.
constexpr std::chrono::milliseconds kIdlePoll{50};
// MX addresses tried per session (Postfix: smtp_mx_address_limit = 5); more only
// delays the deferral when a whole site is down.
constexpr std::size_t kMaxTargets = 10;
// How often an idle feeder rescans the schedule from the start (see run()).
constexpr std::chrono::seconds kRescanInterval{1};
// Queued messages per session before another session to the destination is opened.
constexpr std::size_t kPendingPerSession = 4;
// After stop(), open transactions get this long to finish before workers are torn down.
constexpr std::chrono::seconds kStopGrace{15};
// Largest batch one record() call writes; bounds the writer's memory and latency.
constexpr std::size_t kMaxRecordBatch = 20000;
// A destination whose throttle will not let it send for longer than this (suspended,
// far behind its rate) hands its queued recipients back to the store, due when the
// throttle allows: they must not hold the in-flight window that other domains need.
constexpr std::int64_t kHoldInMemoryMs = 5000;
// The longest a session waits for its next message slot (rate pacing) while holding
// its connection open; beyond that it ends and a later session sends.
constexpr std::int64_t kMaxPaceWaitMs = 2000;
// A recipient whose transaction drew a throttling reply goes back to the ready queue
// (no attempt counted) this many times; after that the reply is recorded as a deferral,
// so a server that throttles forever still ends in `expired`, never in a loop.
constexpr int kMaxThrottleRequeues = 3;
// Connects refused with a throttling reply in a row before the destination's queue is
// deferred like any other refused connect.
constexpr int kMaxThrottledConnects = 5;

struct RecipientKeyHash {
  std::size_t operator()(const queue::RecipientKey& k) const noexcept {
    return std::hash<std::uint64_t>{}((std::uint64_t{k.campaign} << 32) | k.recipient);
  }
};

// The header section of a rendered message (CRLF line ends), without the body.
std::string_view header_section(std::string_view message) { return message.substr(0, message.find("\r\n\r\n")); }

std::string rfc5322_date(std::int64_t now_ms) {
  std::time_t t = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

}  // namespace

// Everything a worker needs to render a campaign's messages; built once per campaign.
struct CampaignContext {
  queue::Campaign campaign;
  Template tmpl;
  std::string from_domain;
  std::shared_ptr<const dkim::Signer> signer;  // null: the campaign is not signed
  std::string signer_error;                    // set when its keys can no longer be loaded
  bool add_from = false;
  bool add_to = false;
  bool add_date = false;
  bool add_message_id = false;
};

struct Job {
  queue::Recipient recipient;
  std::shared_ptr<const CampaignContext> campaign;
  std::string domain;
  int throttled = 0;            // times put back after a throttling reply
  bool throttle_reply = false;  // finish(): the reply was a throttling one (no backoff)
};

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

class Worker;

struct Delivery::Impl {
  Impl(queue::Store& store_in, const Config& config_in, Clock clock_in)
      : store(store_in), config(config_in), clock(std::move(clock_in)), verp(required_verp_secret(config_in)) {}

  void run(const std::function<bool()>& done);
  void dispatch(queue::Recipient&& recipient);
  std::shared_ptr<const CampaignContext> context_for(queue::CampaignId id);
  void report(queue::Outcome&& outcome);  // any worker thread
  void writer_loop();
  void on_recorded(const std::vector<queue::Outcome>& batch);
  void fail(std::exception_ptr error);

  queue::Store& store;
  const Config& config;
  Clock clock;
  Verp verp;
  std::shared_ptr<spdlog::logger> log = kurier::log::get("engine");
  // Before the workers: sessions update their series until the workers are gone.
  Metrics metrics;
  // Limits per destination key, shared by every worker (engine/delivery/shaping/shaping.h).
  Shaper shaper{config.shaping};

  // RSA signatures take about a millisecond: they run here, never on a worker's
  // event loop, which keeps serving every other session meanwhile.
  asio::thread_pool signing_pool{std::max(1u, std::thread::hardware_concurrency())};
  std::vector<std::unique_ptr<Worker>> workers;
  std::unordered_map<queue::CampaignId, std::shared_ptr<const CampaignContext>> contexts;  // feeder only
  // MTA-STS policies, cached per domain for every worker (engine/delivery/mta_sts.h). After the
  // workers: destroyed first, its TXT threads finish while their loops still exist.
  MtaSts mta_sts{config.mta_sts, dns::ResolverOptions{config.dns_servers, config.dns_timeout}};

  // In-flight window: keys dispatched whose outcome is not durable yet.
  mutable std::mutex flight_mutex;
  std::condition_variable flight_cv;  // signalled when outcomes become durable
  std::unordered_set<queue::RecipientKey, RecipientKeyHash> in_flight;
  // Keys recorded since the current due() scan began: that scan's snapshot may still
  // show them as due, so they must not be dispatched again (see run()).
  std::unordered_set<queue::RecipientKey, RecipientKeyHash> recorded_during_scan;
  std::unordered_map<queue::CampaignId, std::uint64_t> in_flight_by_campaign;

  // Result writer.
  std::mutex results_mutex;
  std::condition_variable results_cv;
  std::vector<queue::Outcome> results;
  bool writer_stop = false;
  std::thread writer;

  std::atomic<bool> stopping{false};
  std::atomic<bool> failed{false};
  std::exception_ptr failure;  // guarded by flight_mutex

  std::atomic<std::uint64_t> delivered{0}, deferred{0}, bounced{0}, expired{0}, sessions{0}, messages_sent{0};
};

// One io_context and thread; owns the destinations hashed to it.
class Worker {
 public:
  Worker(Delivery::Impl& owner, std::size_t index)
      : owner_(owner), index_(index), guard_(asio::make_work_guard(io_)) {
    dns::ResolverOptions dns_options;
    dns_options.servers = owner.config.dns_servers;
    dns_options.timeout = owner.config.dns_timeout;
    resolver_ = dns::make_cares_resolver(io_, dns_options);
    session_options_.helo_name = owner.config.helo;
    session_options_.port = owner.config.smtp_port;
    session_options_.tls = owner.config.tls;
    session_options_.timeouts = owner.config.timeouts;
  }

  void start() {
    thread_ = std::thread([this] {
      try {
        io_.run();
      } catch (...) {
        owner_.fail(std::current_exception());
      }
    });
  }

  void post(Job&& job) {
    asio::post(io_, [this, job = std::move(job)]() mutable { enqueue(std::move(job)); });
  }

  std::size_t active_sessions() const { return active_sessions_.load(); }

  // Called once no session is active (or the grace period is over): stops the loop.
  // Jobs never tried stay scheduled in the store, so dropping them loses nothing;
  // coroutine frames still suspended are destroyed with the io_context.
  void shutdown() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    // Timers must go before io_ (destinations_ outlive it, see below).
    for (auto& [domain, dest] : destinations_) dest->wake.reset();
  }

 private:
  void enqueue(Job&& job) {
    auto& slot = destinations_[job.domain];
    if (!slot) slot = std::make_unique<Destination>(job.domain, owner_.metrics.domain(job.domain));
    slot->pending.push_back(std::move(job));
    start_sessions(*slot);
  }

  // The destination's shaping key: at once from its domain, or from its MX hosts when
  // a provider rule matches by MX (then every domain hosted there shares the limits).
  void route(Destination& dest) {
    if (dest.throttle || dest.routing) return;
    if (!owner_.shaper.needs_mx(dest.domain)) {
      routed(dest, owner_.shaper.throttle_for(dest.domain, {}));
      start_sessions(dest);  // routed synchronously: nothing else would start the first job
      return;
    }
    dest.routing = true;
    asio::co_spawn(io_, route_by_mx(this, &dest), [this](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          owner_.log->error("event=route_crashed worker={} error=\"{}\"", index_, e.what());
        }
      }
    });
  }

  static asio::awaitable<void> route_by_mx(Worker* self, Destination* dest) {
    dns::MxResult mx = co_await self->resolve(dest->domain);
    std::vector<std::string> hosts;
    // A failed lookup routes by domain; the session then meets the same failure and
    // records it.
    if (mx.status == dns::Status::ok)
      for (const auto& host : mx.hosts) hosts.push_back(host.name);
    dest->routing = false;
    self->routed(*dest, self->owner_.shaper.throttle_for(dest->domain, hosts));
    self->start_sessions(*dest);
    self->erase_if_idle(*dest);
  }

  void routed(Destination& dest, std::shared_ptr<Throttle> throttle) {
    dest.throttle = std::move(throttle);
    if (!dest.throttle->provider().empty())
      owner_.metrics.link_provider(*dest.metrics, owner_.metrics.provider(dest.throttle->provider()));
  }

  // Runs start_sessions() again at `at_ms` (the earliest of several requests wins).
  void wake_at(Destination& dest, std::int64_t at_ms) {
    if (dest.wake_at_ms != 0 && dest.wake_at_ms <= at_ms) return;
    if (!dest.wake) dest.wake = std::make_unique<asio::steady_timer>(io_);
    dest.wake_at_ms = at_ms;
    dest.wake->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(0, at_ms - owner_.clock())));
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
  void hand_back(Destination& dest, std::int64_t due_ms) {
    owner_.log->debug("event=throttle_hand_back domain={} key={} recipients={} due_ms={}", dest.domain,
                      dest.throttle->key(), dest.pending.size(), due_ms);
    while (!dest.pending.empty()) {
      Job job = dest.pending.pop_front();
      queue::Outcome outcome;
      outcome.key = job.recipient.key;
      outcome.previous_due_ms = job.recipient.status.next_attempt_ms;
      outcome.status = job.recipient.status;
      outcome.status.next_attempt_ms = due_ms;
      owner_.report(std::move(outcome));
    }
  }

  void erase_if_idle(Destination& dest) {
    if (!dest.pending.empty() || dest.sessions > 0 || dest.routing || dest.wake_at_ms != 0 || dest.wake_waits > 0)
      return;
    const std::string key = dest.domain;  // dest dies with the erase
    destinations_.erase(key);             // bounded memory with many domains
  }

  void start_sessions(Destination& dest) {
    if (!dest.throttle) {
      route(dest);                   // at once, or later from the MX lookup
      if (!dest.throttle) return;    // route_by_mx() calls back when it knows
    }
    // One more session per kPendingPerSession queued messages: a handful of messages
    // share one connection (pipelined, reused) instead of opening one each.
    auto wanted = [&] { return (dest.pending.size() + kPendingPerSession - 1) / kPendingPerSession; };
    while (!owner_.stopping && static_cast<std::size_t>(dest.sessions) < wanted()) {
      const std::int64_t now = owner_.clock();
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
      ++active_sessions_;
      ++owner_.sessions;
      dest.metrics->connection_opened();
      owner_.metrics.global().sessions_opened.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(io_, run_session(this, &dest), [this](std::exception_ptr error) {
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            owner_.log->error("event=session_crashed worker={} error=\"{}\"", index_, e.what());
          }
        }
      });
    }
  }

  void session_ended(Destination& dest) {
    --dest.sessions;
    --active_sessions_;
    --owner_.sessions;
    dest.metrics->connection_closed();
    dest.throttle->connection_closed();
    if (!dest.pending.empty() && !owner_.stopping) start_sessions(dest);
    erase_if_idle(dest);
  }

  // A host's addresses through the worker's resolver: it asks for MX, and a host
  // without MX records comes back as its own implicit MX with its A/AAAA addresses.
  asio::awaitable<std::vector<std::string>> host_addresses(std::string host) {
    dns::MxResult found = co_await resolve(host);
    if (found.status != dns::Status::ok || !found.implicit_mx || found.hosts.empty())
      co_return std::vector<std::string>{};
    co_return found.hosts.front().addresses;
  }

  asio::awaitable<dns::MxResult> resolve(std::string domain) {
    auto initiate = [this, domain](auto handler) {
      auto shared = std::make_shared<decltype(handler)>(std::move(handler));
      resolver_->resolve_mx(domain, [shared](dns::MxResult result) { (*shared)(std::move(result)); });
    };
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(dns::MxResult)>(
        std::move(initiate), asio::use_awaitable);
  }

  // One SMTP session for a destination: resolve, open, then deliver queued jobs
  // over the same connection until the queue is empty or the per-connection limit.
  static asio::awaitable<void> run_session(Worker* self, Destination* dest) {
    co_await self->session_body(*dest);
    self->session_ended(*dest);
  }

  asio::awaitable<void> session_body(Destination& dest) {
    dns::MxResult mx = co_await resolve(dest.domain);
    if (mx.status != dns::Status::ok) {
      fail_destination_dns(dest, mx);
      co_return;
    }
    std::vector<smtp::Target> targets;
    for (const auto& host : mx.hosts)
      for (const auto& address : host.addresses)
        if (targets.size() < kMaxTargets) targets.push_back({host.name, address});
    if (targets.empty()) {
      mx.status = dns::Status::temporary;
      mx.detail = "no MX host has an address";
      fail_destination_dns(dest, mx);
      co_return;
    }
    // TLS: the destination's policy (shaping.toml `tls`, else [smtp] tls), unless the
    // domain publishes MTA-STS (RFC 8461), which may narrow the MX hosts and demand
    // verified TLS. The policy lookup is asynchronous and cached (engine/delivery/mta_sts.h).
    std::optional<StsPolicy> sts;
    if (owner_.mta_sts.options().enabled) {
      StsLookup found = co_await owner_.mta_sts.lookup(
          dest.domain, [this](std::string host) { return host_addresses(std::move(host)); });
      owner_.log->debug("event=mta_sts domain={} policy={} detail=\"{}\"", dest.domain,
                        found.policy ? to_string(found.policy->mode) : "none", found.detail);
      sts = std::move(found.policy);
    }
    TlsPlan tls = plan_tls(dest.throttle->limits().tls.value_or(owner_.config.tls), sts, std::move(targets));
    if (owner_.stopping || dest.pending.empty()) co_return;
    if (!tls.refused.empty()) {
      smtp::ConnectFailure refused;
      refused.phase = "mta-sts";
      refused.detail = tls.refused;
      fail_destination_connect(dest, {refused}, tls.label);
      co_return;
    }
    smtp::SessionOptions options = session_options_;
    options.tls = tls.tls;
    options.cert_check = tls.cert_check;
    options.ca_file = owner_.config.mta_sts.ca_file;

    smtp::OpenResult opened = co_await smtp::open_session(tls.targets, options);
    if (!opened.session) {
      fail_destination_connect(dest, opened.failures, tls.label);
      co_return;
    }
    smtp::Session& session = *opened.session;
    ++dest.connected;
    dest.throttled_connects = 0;
    Throttle& throttle = *dest.throttle;
    struct Connected {
      Destination& d;
      ~Connected() { --d.connected; }
    } connected_guard{dest};
    const auto& info = session.info();
    // Protocol and cipher (or plaintext, and why), the policy applied and the
    // certificate check, in every attempt the session carries.
    const std::string tls_detail = describe_tls(tls, info);
    std::string message;  // reused for every message of this session
    int sent = 0;
    while (!dest.pending.empty() && session.usable() && sent < throttle.limits().messages_per_connection &&
           !owner_.stopping) {
      // Shaping: give way when the key was slowed below the connections open or
      // suspended, and pace each message to the key's rate (shared with every domain of
      // the provider).
      const std::int64_t now = owner_.clock();
      const auto slot = throttle.reserve_message(now, kMaxPaceWaitMs);
      if (!slot) break;
      if (*slot > now) {
        asio::steady_timer pace(io_, std::chrono::milliseconds(*slot - now));
        co_await pace.async_wait(asio::use_awaitable);
        if (dest.pending.empty() || !session.usable() || owner_.stopping) break;
      }
      Job job = dest.pending.pop_front();
      dest.metrics->add_in_flight(1);
      struct InFlight {
        Series& s;
        ~InFlight() { s.add_in_flight(-1); }
      } in_flight_guard{*dest.metrics};
      const CampaignContext& ctx = *job.campaign;
      smtp::Envelope envelope;
      envelope.mail_from = owner_.verp.address({job.recipient.key.campaign, job.recipient.key.recipient},
                                               ctx.campaign.verp_domain);
      // RCPT TO with the domain's A-labels: an IDN domain alone does not need SMTPUTF8.
      envelope.recipients = {ascii_address(job.recipient.address)};
      render(job, message);
      if (ctx.signer || !ctx.signer_error.empty()) {
        std::string failure = ctx.signer_error;
        if (failure.empty()) {
          try {
            message.insert(0, co_await sign_on_pool(ctx.signer, message));
          } catch (const std::exception& e) {
            failure = e.what();
          }
        }
        if (!failure.empty()) {
          queue::Attempt attempt;
          attempt.time_ms = owner_.clock();
          attempt.text = "DKIM signing failed: " + failure;
          Classification c{Disposition::deferred, "soft", "systemerror"};
          finish(dest, job, c, std::move(attempt));
          continue;
        }
      }
      envelope.eight_bit = ctx.tmpl.eight_bit() || has_8bit(message);
      // SMTPUTF8 only when something really is UTF-8: the local part, or raw UTF-8 in
      // the header section (RFC 6532; the template's own header lines).
      envelope.smtputf8 = has_8bit(envelope.recipients.front()) || has_8bit(header_section(message));

      ++owner_.messages_sent;
      owner_.metrics.global().messages_attempted.fetch_add(1, std::memory_order_relaxed);
      smtp::TransactionResult result = co_await session.send(envelope, message);
      const smtp::Reply& reply = result.outcome_for(0);
      // A throttling reply (421 "too many connections", 4.7.28, TS01, ...) slows or
      // suspends the whole key; the recipient was not at fault: back to the queue,
      // unless that has happened too often already.
      if (reply.code >= 400 &&
          throttle.on_reply(reply.code, reply.enhanced, reply.text, owner_.clock()) != ThrottleAction::none) {
        dest.metrics->count_throttled();
        owner_.log->debug("event=throttled domain={} key={} reply=\"{} {} {}\"", dest.domain, throttle.key(),
                          reply.code, reply.enhanced, reply.text);
        if (job.throttled++ < kMaxThrottleRequeues) {
          dest.pending.push_front(std::move(job));
          break;
        }
        job.throttle_reply = true;
      }
      // The server closing a reused connection before our MAIL (421 or a drop) is
      // about the connection, not this recipient: put it back for a new session.
      // Not a throttling reply past kMaxThrottleRequeues: that one is recorded.
      bool connection_refused_mail = (reply.code == 421 || (reply.code == 0 && result.error_phase == "mail"));
      if (connection_refused_mail && sent > 0 && !job.throttle_reply) {
        dest.pending.push_front(std::move(job));
        break;
      }
      ++sent;
      queue::Attempt attempt;
      attempt.time_ms = owner_.clock();
      attempt.mx_host = info.target.host;
      attempt.mx_address = info.target.address;
      attempt.tls = info.tls;
      attempt.tls_detail = tls_detail;
      attempt.code = reply.code;
      attempt.enhanced = reply.enhanced;
      attempt.text = reply.code ? reply.text
                                : (result.error_phase + ": " + (result.error ? result.error.message() : "no reply"));
      Classification c = classify_reply(reply.code, reply.enhanced, reply.text, bounce_rules_);
      finish(dest, job, c, std::move(attempt));
    }
    co_await session.quit();
  }

  // Signs on the signing pool and resumes on this worker's thread with the
  // DKIM-Signature field(s). `message` stays alive: the caller awaits the result.
  asio::awaitable<std::string> sign_on_pool(std::shared_ptr<const dkim::Signer> signer, const std::string& message) {
    auto initiate = [this, signer, &message](auto handler) {
      asio::post(owner_.signing_pool, [signer, &message, handler = std::move(handler)]() mutable {
        std::exception_ptr error;
        std::string header;
        try {
          header = signer->sign(message);
        } catch (...) {
          error = std::current_exception();
        }
        auto executor = asio::get_associated_executor(handler);
        asio::post(executor, [handler = std::move(handler), error, header = std::move(header)]() mutable {
          handler(error, std::move(header));
        });
      });
    };
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr, std::string)>(
        std::move(initiate), asio::use_awaitable);
  }

  void render(const Job& job, std::string& out) {
    const CampaignContext& ctx = *job.campaign;
    const auto now = owner_.clock();
    std::string headers;
    if (ctx.add_message_id) {
      headers += "Message-ID: <";
      headers += std::to_string(job.recipient.key.campaign) + "." + std::to_string(job.recipient.key.recipient) + "." +
                 std::to_string(ctx.campaign.created_ms) + "@" + ctx.from_domain + ">\r\n";
    }
    if (ctx.add_date) {
      if (now / 1000 != date_second_) {
        date_second_ = now / 1000;
        date_ = rfc5322_date(now);
      }
      headers += "Date: " + date_ + "\r\n";
    }
    if (ctx.add_from) headers += "From: " + ctx.campaign.from + "\r\n";
    // The RCPT TO form (A-labels), so an IDN domain adds no UTF-8 to the header.
    if (ctx.add_to) headers += "To: <" + ascii_address(job.recipient.address) + ">\r\n";
    values_.clear();
    for (const auto& f : job.recipient.fields) values_.emplace_back(f);
    out.clear();
    out.reserve(ctx.tmpl.literal_size() + headers.size() + 256);
    ctx.tmpl.render(values_, headers, out);
  }

  // Turns a classification into the recipient's new status and hands it to the writer.
  // `dest` is routed (its throttle set) before any of its jobs is tried.
  void finish(Destination& dest, Job& job, const Classification& c, queue::Attempt attempt) {
    const auto now = attempt.time_ms;
    queue::Outcome outcome;
    outcome.key = job.recipient.key;
    outcome.previous_due_ms = job.recipient.status.next_attempt_ms;
    queue::Status& s = outcome.status;
    s.attempts = static_cast<std::uint16_t>(job.recipient.status.attempts + 1);
    s.last_attempt_ms = now;
    s.code = attempt.code;
    s.enhanced = attempt.enhanced;
    s.mx = attempt.mx_host.empty() ? attempt.mx_address : attempt.mx_host;
    s.category = c.category;
    s.reason = c.reason;
    const ShapingLimits& shaping = dest.throttle->limits();
    s.backoff = job.recipient.status.backoff;
    switch (c.disposition) {
      case Disposition::delivered:
        s.state = queue::State::delivered;
        attempt.classification = "delivered";
        break;
      case Disposition::bounced:
        s.state = queue::State::bounced;
        attempt.classification = "bounced " + c.category + " " + c.reason;
        break;
      case Disposition::deferred: {
        const auto age = std::chrono::milliseconds(now - job.campaign->campaign.created_ms);
        const auto& retry = shaping.retry;
        // Greylisting and throttling are the server pacing us, not a failure of this
        // recipient: their own delay, and the retry schedule does not advance.
        const bool greylisted = is_greylist_reply(attempt.code, attempt.enhanced, attempt.text);
        std::chrono::seconds delay;
        std::string kind;
        if (greylisted) {
          delay = greylist_hint(attempt.text).value_or(shaping.greylist_delay);
          kind = "greylisted";
          dest.metrics->count_greylisted();
        } else if (job.throttle_reply) {
          delay = retry.front();
          kind = "throttled " + c.reason;
        } else {
          s.backoff = static_cast<std::uint16_t>(s.backoff + 1);
          delay = retry[std::min<std::size_t>(s.backoff - 1u, retry.size() - 1)];
          kind = c.reason;
        }
        if (age >= shaping.max_age) {
          s.state = queue::State::expired;
          s.category = "soft";
          s.reason = "expired";
          attempt.classification = "expired (last: " + c.reason + ")";
        } else {
          s.state = queue::State::deferred;
          // The last try happens at max age, so expiry is decided by a real reply.
          const auto expiry = job.campaign->campaign.created_ms +
                              std::chrono::duration_cast<std::chrono::milliseconds>(shaping.max_age).count();
          s.next_attempt_ms =
              std::min(now + std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(), expiry);
          attempt.classification = "deferred " + kind;
        }
        break;
      }
    }
    outcome.attempt = std::move(attempt);
    // A hard bounce suppresses the address in the same synced batch as the outcome.
    outcome.address_update = address_update_for(s, job.recipient.address, owner_.config.bounce_soft_limit);
    switch (s.state) {
      case queue::State::delivered: dest.metrics->count_delivered(); break;
      case queue::State::deferred: dest.metrics->count_deferred(); break;
      case queue::State::bounced: dest.metrics->count_bounced(bounce_category(s.category)); break;
      case queue::State::expired: dest.metrics->count_expired(); break;
      default: break;
    }
    owner_.report(std::move(outcome));
  }

  void fail_destination_dns(Destination& dest, const dns::MxResult& mx) {
    Classification c;
    std::string enhanced;
    if (dns::is_permanent(mx.status)) {
      c.disposition = Disposition::bounced;
      c.reason = mx.status == dns::Status::null_mx ? "notaccept" : "hostunknown";
      c.category = "hard";
      enhanced = mx.status == dns::Status::null_mx ? "5.1.10" : "5.1.2";
    } else {
      c.disposition = Disposition::deferred;
      c.reason = "networkerror";
      c.category = "soft";
      enhanced = "4.4.3";
    }
    owner_.metrics.global().dns_failures.fetch_add(1, std::memory_order_relaxed);
    owner_.log->debug("event=dns_failure domain={} status={} detail=\"{}\"", dest.domain, dns::to_string(mx.status),
                      mx.detail);
    while (!dest.pending.empty()) {
      Job job = dest.pending.pop_front();
      queue::Attempt attempt;
      attempt.time_ms = owner_.clock();
      attempt.enhanced = enhanced;
      attempt.text = std::string("DNS: ") + dns::to_string(mx.status) + (mx.detail.empty() ? "" : ": " + mx.detail);
      finish(dest, job, c, std::move(attempt));
    }
  }

  void fail_destination_connect(Destination& dest, const std::vector<smtp::ConnectFailure>& failures,
                                const std::string& tls_policy) {
    owner_.metrics.global().connect_failures.fetch_add(1, std::memory_order_relaxed);
    // Refused with a throttling reply (a 421 "too many connections" greeting): the
    // key slows down and the queue waits for the throttle, up to a point.
    if (!failures.empty() && failures.back().reply.code >= 400) {
      const auto& reply = failures.back().reply;
      if (dest.throttle->on_reply(reply.code, reply.enhanced, reply.text, owner_.clock()) != ThrottleAction::none) {
        dest.metrics->count_throttled();
        if (++dest.throttled_connects <= kMaxThrottledConnects) return;
      }
    }
    // A session of this destination got through: leave the queue to it. Otherwise
    // the site is down: defer everything queued for it now rather than letting new
    // sessions fail one after another.
    if (dest.connected > 0) return;
    queue::Attempt base;
    int code = 0;
    std::string enhanced, text;
    if (!failures.empty()) {
      const auto& last = failures.back();
      base.mx_host = last.target.host;
      base.mx_address = last.target.address;
      code = last.reply.code;
      enhanced = last.reply.enhanced;
      text = last.phase + ": " +
             (last.reply.code ? last.reply.text : last.detail.empty() ? last.error.message() : last.detail);
      // A TLS refusal is the policy's doing: name it.
      if (last.phase == "starttls" || last.phase == "mta-sts") text += " (tls policy: " + tls_policy + ")";
      if (failures.size() > 1) text += " (" + std::to_string(failures.size()) + " MX addresses tried)";
    } else {
      text = "no MX address to try";
    }
    Classification c = classify_reply(code, enhanced, text, bounce_rules_);
    // A site that refuses to talk is a site-level problem: defer, never bounce.
    c.disposition = Disposition::deferred;
    if (c.category == "hard") c.category = "soft";
    owner_.log->debug("event=connect_failed domain={} detail=\"{}\"", dest.domain, text);
    while (!dest.pending.empty()) {
      Job job = dest.pending.pop_front();
      queue::Attempt attempt = base;
      attempt.time_ms = owner_.clock();
      attempt.code = code;
      attempt.enhanced = enhanced;
      attempt.text = text;
      finish(dest, job, c, std::move(attempt));
    }
  }

  Delivery::Impl& owner_;
  std::size_t index_;
  // Declared before io_: coroutine frames still suspended when the worker is torn
  // down are destroyed with io_ and may touch their Destination on the way out.
  std::unordered_map<std::string, std::unique_ptr<Destination>> destinations_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::unique_ptr<dns::MxResolver> resolver_;
  smtp::SessionOptions session_options_;
  const bounce::Rules& bounce_rules_ = bounce_rules_or_builtin(owner_.config);  // [bounce] rules
  std::atomic<std::size_t> active_sessions_{0};
  std::vector<std::string_view> values_;
  std::int64_t date_second_ = -1;
  std::string date_;
  std::thread thread_;
};

std::shared_ptr<const CampaignContext> Delivery::Impl::context_for(queue::CampaignId id) {
  auto it = contexts.find(id);
  if (it != contexts.end()) return it->second;
  auto campaign = store.campaign(id);
  if (!campaign) return nullptr;
  auto ctx = std::make_shared<CampaignContext>(
      CampaignContext{*campaign, Template::compile(campaign->template_text, campaign->fields), {}, {}, {}, {}, {}, {}, {}});
  ctx->from_domain = from_address_domain(campaign->from);
  if (ctx->from_domain.empty()) ctx->from_domain = "localhost";
  ctx->add_from = !ctx->tmpl.has_header("from");
  ctx->add_to = !ctx->tmpl.has_header("to");
  ctx->add_date = !ctx->tmpl.has_header("date");
  ctx->add_message_id = !ctx->tmpl.has_header("message-id");
  // Keys were checked at submission; if one has gone since, the campaign's messages
  // are deferred (never sent unsigned) and the cause is logged and recorded.
  auto settings = nlohmann::json::parse(campaign->settings, nullptr, false);
  if (settings.is_object() && settings.contains("dkim")) {
    std::vector<dkim::KeySpec> keys;
    for (const auto& k : settings["dkim"])
      keys.push_back({k.value("domain", ""), k.value("selector", ""), k.value("key", "")});
    try {
      ctx->signer = dkim::Signer::create(std::move(keys), ctx->from_domain);
    } catch (const std::exception& e) {
      ctx->signer_error = e.what();
      log->error("event=dkim_key_unavailable campaign={} error=\"{}\"", campaign->name, e.what());
    }
  }
  contexts.emplace(id, ctx);
  return ctx;
}

void Delivery::Impl::dispatch(queue::Recipient&& recipient) {
  auto ctx = context_for(recipient.key.campaign);
  if (!ctx) return;  // campaign vanished: cannot happen with a consistent store
  {
    std::lock_guard lock(flight_mutex);
    if (recorded_during_scan.count(recipient.key)) return;  // stale snapshot: already done
    if (!in_flight.insert(recipient.key).second) return;   // already on its way
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
  for (;;) {
    {
      std::unique_lock lock(results_mutex);
      results_cv.wait(lock, [&] { return !results.empty() || writer_stop; });
      if (results.empty() && writer_stop) return;
      if (results.size() <= kMaxRecordBatch) {
        batch.swap(results);
      } else {
        batch.assign(std::make_move_iterator(results.begin()),
                     std::make_move_iterator(results.begin() + static_cast<std::ptrdiff_t>(kMaxRecordBatch)));
        results.erase(results.begin(), results.begin() + static_cast<std::ptrdiff_t>(kMaxRecordBatch));
      }
    }
    try {
      store.record(batch);
    } catch (...) {
      fail(std::current_exception());
      return;
    }
    on_recorded(batch);
    batch.clear();
  }
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

void Delivery::Impl::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(flight_mutex);
    if (!failure) failure = error;
  }
  failed = true;
  stopping = true;
  flight_cv.notify_all();
}

void Delivery::Impl::run(const std::function<bool()>& done) {
  // Throttle gauges go to the series ops look at: the provider's, or the domain's.
  shaper.on_new_throttle([this](Throttle& throttle) {
    if (!throttle.provider().empty()) return throttle.attach(&metrics.provider(throttle.provider()));
    std::string_view key = throttle.key();
    if (key.starts_with("domain:")) key.remove_prefix(7);
    throttle.attach(&metrics.domain(key));
  });
  std::size_t worker_count = config.workers > 0 ? static_cast<std::size_t>(config.workers)
                                                : std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < worker_count; ++i) workers.push_back(std::make_unique<Worker>(*this, i));
  for (auto& w : workers) w->start();
  writer = std::thread([this] { writer_loop(); });

  // The cursor makes each scan start where the last one ended, so entries in flight
  // are not read again and again. Entries can appear behind it (a campaign committed
  // while we deliver has due = its creation time), so an idle feeder rescans from the
  // start now and then; in-flight keys are skipped, and keys recorded while a scan ran
  // are skipped too because the scan's snapshot may predate their new state.
  queue::ScheduleCursor cursor;
  auto last_rescan = std::chrono::steady_clock::now();
  try {
    while (!stopping) {
      std::size_t flying;
      {
        std::lock_guard lock(flight_mutex);
        flying = in_flight.size();
        recorded_during_scan.clear();
      }
      std::size_t room = config.window > flying ? config.window - flying : 0;
      std::size_t taken = 0;
      if (room > 0) {
        auto due = store.due(clock(), std::min(room, kDueBatch), cursor);
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
  } catch (...) {
    fail(std::current_exception());
  }

  // Shut down: let open transactions finish, then make every outcome durable.
  stopping = true;
  const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
  auto busy = [&] {
    for (auto& w : workers)
      if (w->active_sessions() > 0) return true;
    return false;
  };
  while (busy() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // Signatures still being computed post their results to the workers: let them
  // finish while the workers' io_contexts still exist.
  signing_pool.join();
  for (auto& w : workers) w->shutdown();
  {
    std::lock_guard lock(results_mutex);
    writer_stop = true;
  }
  results_cv.notify_one();
  if (writer.joinable()) writer.join();
  workers.clear();
  std::lock_guard lock(flight_mutex);
  if (failure) std::rethrow_exception(failure);
}

Delivery::Delivery(queue::Store& store, const Config& config, Clock clock)
    : impl_(std::make_unique<Impl>(store, config, std::move(clock))) {}

Delivery::~Delivery() = default;

void Delivery::run(const std::function<bool()>& done) { impl_->run(done); }

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

std::uint64_t Delivery::in_flight(queue::CampaignId campaign) const {
  std::lock_guard lock(impl_->flight_mutex);
  auto it = impl_->in_flight_by_campaign.find(campaign);
  return it == impl_->in_flight_by_campaign.end() ? 0 : it->second;
}

}  // namespace kurier::engine
