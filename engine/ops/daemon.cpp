// Wiring of `kurier serve` (see daemon.h): the main thread runs the delivery engine,
// the HTTP server and the bounce listener have threads of their own, the campaign
// counts a refresher thread. A store failure ends run() with 1 and a line on stderr.
#include "engine/ops/daemon.h"

#include <cstdio>

#include "common/log.h"
#include "engine/core/input_error.h"
#include "engine/ops/auth_token.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {

HostPort checked_http_listen(const Config& config) {
  const std::string config_name = config.file.empty() ? "kurier.toml" : config.file.string();
  auto listen = parse_host_port(config.http.listen);
  if (!listen) throw InputError(config_name, 0, "http.listen", "not a host:port address: \"" + config.http.listen + "\"");
  // Without TLS in front, the token and the API travel in clear: only loopback is
  // safe by default; another address is an explicit decision shown by a set token.
  if (!is_loopback_host(listen->host) && config.http.token.empty())
    throw InputError(config_name, 0, "http.token",
                     "is required to listen on the non-loopback address " + config.http.listen);
  return *listen;
}

Daemon::Daemon(const Config& config, std::unique_ptr<queue::Store> store)
    : config_(config),
      listen_(checked_http_listen(config)),
      store_(std::move(store)),
      delivery_(*store_, config),
      counts_(*store_, delivery_),
      seed_(*store_, config.shaping, delivery_.metrics(), system_now_ms()),
      api_(config, *store_, delivery_, counts_, ensure_token(config)),
      http_(config.http.listen, [this](const HttpRequest& r) { return api_(r); }) {
  api_.on_store_failure([this](const std::string& what) { store_failed(what); });
  start_events();
  // DSNs, ARF reports and auto-replies for the VERP domains, applied to the same store.
  // `[bounce] listen = ""` leaves it off (e.g. bounces arrive through a Maildir).
  if (!config.bounce.listen.empty()) {
    bounces_ = std::make_unique<BounceListener>(*store_, config, std::string{}, events_.get());
    bounces_->start();
  }
}

Daemon::~Daemon() = default;

// The event log (engine/events/) for delivery and intake, and the webhooks that follow it.
void Daemon::start_events() {
  events_ = open_campaign_events(config_, *store_, &delivery_.metrics().global());
  delivery_.set_events(events_.get());
  api_.set_events(events_.get());
  if (!events_ || config_.webhooks.empty()) return;
  webhooks_ = std::make_unique<Webhooks>(config_.webhooks, event_log_file(config_.events, config_.queue.path),
                                         *store_, &delivery_.metrics().global());
  webhooks_->start();
}

int Daemon::run() {
  auto log = kurier::log::get("serve");
  log->info("event=serve_started http={}:{} bounce_port={} queue={}", listen_.host, http_.port(),
            bounces_ ? bounces_->port() : 0, config_.queue.path.string());
  std::fprintf(stderr, "kurier: serving on http://%s:%u (queue %s)\n", listen_.host.c_str(), unsigned{http_.port()},
               config_.queue.path.c_str());
  int status = 0;
  try {
    delivery_.run([this] { return stop_requested_.load(); });
  } catch (const std::exception& e) {
    log->error("event=delivery_failed error=\"{}\"", e.what());
    std::fprintf(stderr, "kurier: %s\n", e.what());
    status = 1;
  }
  {
    std::lock_guard lock(store_failure_mutex_);
    if (status == 0 && !store_failure_.empty()) {
      std::fprintf(stderr, "kurier: %s\n", store_failure_.c_str());
      status = 1;
    }
  }
  http_.stop();
  if (bounces_) bounces_->stop();
  if (webhooks_) webhooks_->stop();
  log->info("event=serve_stopped");
  return status;
}

void Daemon::stop() {
  stop_requested_ = true;
  delivery_.stop();
}

void Daemon::store_failed(const std::string& what) {
  {
    std::lock_guard lock(store_failure_mutex_);
    if (store_failure_.empty()) store_failure_ = what;
  }
  delivery_.stop();
}

}  // namespace kurier::engine
