// kurier serve / submit / top and the live status table. serve: the main thread runs
// the delivery engine; a signal thread turns SIGTERM/SIGINT into a graceful stop; the
// HTTP server has its own thread; a refresher thread keeps campaign counts current.
// A store failure ends serve with exit 1; bad configuration with exit 2.
#include "engine/ops/serve_command.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/text.h"
#include "engine/bounces/listener.h"
#include "engine/intake/campaign.h"
#include "engine/delivery/delivery.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/intake/hygiene/hygiene_dns.h"
#include "engine/ops/http_server.h"
#include "engine/core/input_error.h"
#include "engine/ops/metrics.h"
#include "engine/cli/text_format.h"
#include "queue/store.h"

namespace kurier::engine {
namespace detail {
extern const std::string_view kDashboardHtml;  // engine/ops/dashboard.html, embedded by CMake
}  // namespace detail

namespace {

using nlohmann::json;

// Campaign counts cost a scan of the campaign (Store::counts); the refresher does it
// at most this often, off the HTTP thread, so a dashboard polling every second never
// scans a million-recipient campaign per request.
constexpr std::chrono::milliseconds kCountsRefresh{1000};
// Random bytes of a generated token (hex-encoded: 64 characters).
constexpr std::size_t kTokenBytes = 32;
// `kurier status` waits this long for the daemon before falling back to the store.
constexpr std::chrono::milliseconds kStatusTimeout{3000};
// `kurier top` refresh period.
constexpr std::chrono::milliseconds kTopRefresh{1000};


std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The configured token, else the generated one (created now when `create`).
std::string load_token(const Config& config, bool create) {
  if (!config.http_token.empty()) return config.http_token;
  const auto path = token_file(config);
  {
    std::ifstream in(path);
    std::string token;
    if (in && std::getline(in, token) && !trim(token).empty()) return trim(token);
  }
  if (!create) return {};
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("cannot generate an HTTP token: RAND_bytes failed");
  std::string token = text::to_hex({reinterpret_cast<const char*>(bytes), sizeof bytes});
  std::filesystem::create_directories(path.parent_path());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path.string());
  return token;
}

bool token_matches(const std::string& authorization, const std::string& token) {
  static constexpr std::string_view kBearer = "Bearer ";
  if (token.empty() || authorization.size() != kBearer.size() + token.size()) return false;
  if (authorization.compare(0, kBearer.size(), kBearer) != 0) return false;
  return CRYPTO_memcmp(authorization.data() + kBearer.size(), token.data(), token.size()) == 0;
}

HttpResponse json_response(int status, const json& body) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

json series_json(const SeriesSnapshot& s, std::int64_t now_s, const char* name_key) {
  json bounced = json::object();
  for (std::size_t i = 0; i < bounce::kFailureCategories; ++i) bounced[std::string(to_string(static_cast<bounce::Category>(i)))] = s.bounced[i];
  json j = {{name_key, s.name},
            {"queued", s.queued},
            {"in_flight", s.in_flight},
            {"connections", s.connections},
            {"connection_limit", s.connection_limit},
            {"delivered", s.delivered},
            {"deferred", s.deferred},
            {"greylisted", s.greylisted},
            {"expired", s.expired},
            {"bounced", s.bounced_total()},
            {"bounced_by_category", bounced},
            {"throttled", s.throttled},
            {"rate_limit", s.rate_limit},
            {"configured_rate", s.configured_rate},
            {"suspended_until", s.suspended_until},
            {"state", to_string(s.throttle_state(now_s))}};
  if (std::string_view(name_key) == "domain") j["provider"] = s.provider;
  return j;
}

// Per-campaign counts, refreshed by a background thread (see kCountsRefresh).
class CampaignCounts {
 public:
  CampaignCounts(queue::Store& store, Delivery& delivery) : store_(store), delivery_(delivery) {
    thread_ = std::thread([this] { loop(); });
  }
  ~CampaignCounts() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // Asks for a refresh soon (after a submission).
  void poke() { cv_.notify_all(); }

  json to_json() {
    std::lock_guard lock(mutex_);
    json out = json::array();
    for (const auto& [id, row] : rows_) {
      const auto& c = row.counts;
      out.push_back({{"campaign", row.campaign.name},
                     {"created", iso_time(row.campaign.created_ms, false)},
                     {"total", c.total()},
                     {"queued", c.queued},
                     {"delivered", c.delivered},
                     {"deferred", c.deferred},
                     {"bounced", c.bounced},
                     {"expired", c.expired},
                     {"suppressed", c.suppressed},
                     {"in_flight", delivery_.in_flight(id)},
                     {"done", c.pending() == 0}});
    }
    return out;
  }

 private:
  struct Row {
    queue::Campaign campaign;
    queue::Counts counts;
  };

  void loop() {
    auto log = kurier::log::get("serve");
    std::unique_lock lock(mutex_);
    while (!stop_) {
      lock.unlock();
      try {
        refresh();
      } catch (const std::exception& e) {
        log->error("event=status_refresh_failed error=\"{}\"", e.what());
      }
      lock.lock();
      cv_.wait_for(lock, kCountsRefresh);
    }
  }

  void refresh() {
    for (auto& campaign : store_.campaigns()) {
      {
        std::lock_guard lock(mutex_);
        auto it = rows_.find(campaign.id);
        // A campaign with nothing pending does not change any more (late events aside).
        if (it != rows_.end() && it->second.counts.pending() == 0) continue;
      }
      auto counts = store_.counts(campaign.id);
      std::lock_guard lock(mutex_);
      rows_[campaign.id] = Row{std::move(campaign), counts};
    }
  }

  queue::Store& store_;
  Delivery& delivery_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<queue::CampaignId, Row> rows_;
  std::thread thread_;
};

// Routes the daemon's HTTP requests (on the HTTP server's handler threads: reads run
// concurrently, submissions one at a time).
class Api {
 public:
  Api(const Config& config, queue::Store& store, Delivery& delivery, CampaignCounts& counts, std::string token)
      : config_(config), store_(store), delivery_(delivery), counts_(counts), token_(std::move(token)),
        hygiene_(config.hygiene), mail_hosts_(make_no_mail_host_lookup(hygiene_, config)) {}

  HttpResponse operator()(const HttpRequest& request) {
    const bool get = request.method == "GET" || request.method == "HEAD";
    if (request.path == "/" && get) return {200, "text/html; charset=utf-8", std::string(detail::kDashboardHtml)};
    if (request.path == "/metrics" && get)
      return {200, "text/plain; version=0.0.4; charset=utf-8", to_prometheus(delivery_.metrics().snapshot())};
    if (request.path == "/api/status" && get) return json_response(200, status());
    if (request.path == "/api/campaigns") {
      if (request.method != "POST") return json_response(405, {{"error", "use POST"}});
      if (!token_matches(request.authorization, token_))
        return json_response(401, {{"error", "a valid 'Authorization: Bearer <token>' is required"}});
      return submit(request.body);
    }
    return json_response(404, {{"error", "no such endpoint: " + request.path}});
  }

 private:
  json status() {
    auto snapshot = delivery_.metrics().snapshot();
    const std::int64_t now_s = snapshot.taken_ms / 1000;
    json domains = json::array(), providers = json::array();
    for (const auto& d : snapshot.domains) domains.push_back(series_json(d, now_s, "domain"));
    for (const auto& p : snapshot.providers) providers.push_back(series_json(p, now_s, "provider"));
    auto progress = delivery_.progress();
    return {{"time", snapshot.taken_ms},
            {"started", snapshot.started_ms},
            {"totals",
             {{"delivered", progress.delivered},
              {"deferred", progress.deferred},
              {"bounced", progress.bounced},
              {"expired", progress.expired},
              {"in_flight", progress.in_flight},
              {"sessions", progress.sessions},
              {"messages_sent", progress.messages_sent}}},
            {"domains", domains},
            {"providers", providers},
            {"campaigns", counts_.to_json()}};
  }

  HttpResponse submit(const std::string& body) {
    auto request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("campaign") || !request["campaign"].is_string())
      return json_response(400, {{"error", "body must be {\"campaign\": \"/path/to/campaign.toml\"}"}});
    std::filesystem::path file = request["campaign"].get<std::string>();
    if (!file.is_absolute()) return json_response(400, {{"error", "campaign path must be absolute: " + file.string()}});
    // One intake at a time: the hygiene DNS lookup is single-threaded, and two
    // submissions of one campaign must not race over its id.
    std::lock_guard lock(submit_mutex_);
    try {
      CampaignSpec spec = load_campaign(file);
      // The same intake as `kurier send`: list hygiene, DKIM keys, one synced commit.
      IntakeResult intake = submit_campaign(store_, spec, system_now_ms(), config_.dkim_keys,
                                            IntakeHygiene{&hygiene_, mail_hosts_.get()});
      delivery_.metrics().global().campaigns_submitted.fetch_add(1, std::memory_order_relaxed);
      counts_.poke();
      log_->info("event=campaign_submitted campaign={} rows={} queued={} suppressed={} resumed={}", spec.id,
                 intake.rows, intake.queued, intake.suppressed, intake.resumed);
      return json_response(200, {{"campaign", spec.id},
                                 {"resumed", intake.resumed},
                                 {"rows", intake.rows},
                                 {"queued", intake.queued},
                                 {"suppressed", intake.suppressed},
                                 {"suppressed_by_reason", intake.suppressed_by_reason},
                                 {"warned", intake.warned},
                                 {"verdicts", intake.verdicts}});
    } catch (const InputError& e) {
      return json_response(400, {{"error", e.what()}, {"file", e.file()}, {"line", e.line()}, {"field", e.field()}});
    } catch (const queue::StoreError& e) {
      // The queue takes no writes (disk full, read-only, I/O error): nothing of this
      // campaign is committed, and no outcome could be recorded either, so the daemon
      // stops rather than send mail it cannot account for.
      log_->error("event=queue_failed during=submit error=\"{}\"", e.what());
      if (on_store_failure_) on_store_failure_(e.what());
      return json_response(507, {{"error", e.what()}});
    }
  }

 public:
  // Called (on an HTTP handler thread) when an intake fails on the queue.
  void on_store_failure(std::function<void(const std::string&)> fn) { on_store_failure_ = std::move(fn); }

 private:
  const Config& config_;
  queue::Store& store_;
  Delivery& delivery_;
  CampaignCounts& counts_;
  std::string token_;
  const Hygiene hygiene_;
  std::unique_ptr<MailHostLookup> mail_hosts_;  // null: no_mail_host is off
  std::mutex submit_mutex_;
  std::function<void(const std::string&)> on_store_failure_;
  std::shared_ptr<spdlog::logger> log_ = kurier::log::get("serve");
};

// SIGTERM / SIGINT -> graceful stop, on a thread of its own (sigwait), so the stop
// can take locks and log. The signals are blocked in every thread (set before any
// thread starts), so none of them is interrupted.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int)> on_signal) : on_signal_(std::move(on_signal)) {
    thread_ = std::thread([this] {
      sigset_t set = signals();
      for (;;) {
        int signal = 0;
        if (sigwait(&set, &signal) != 0) continue;
        if (signal == SIGUSR1 || done_) return;  // our own wake-up at shutdown
        on_signal_(signal);
      }
    });
  }
  ~SignalWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  static sigset_t signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    return set;
  }

 private:
  std::function<void(int)> on_signal_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

std::string cell_rate(const json& row) {
  double limit = row.value("rate_limit", 0.0);
  if (limit <= 0) return "-";
  return fmt::format("{:.4g}/s", limit);
}

std::string cell_until(std::int64_t until_s, std::int64_t now_s) {
  if (until_s <= now_s) return "-";
  return fmt::format("{} ({}s)", iso_time(until_s * 1000, false).substr(11, 8), until_s - now_s);
}

std::string cell_limit(const json& row) {
  auto limit = row.value("connection_limit", std::int64_t{0});
  return fmt::format("{}/{}", row.value("connections", std::int64_t{0}), limit > 0 ? std::to_string(limit) : "-");
}

void table(std::string& out, const json& rows, const char* name_key, std::int64_t now_s) {
  out += fmt::format("{:<28} {:<10} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>9}  {}\n", name_key, "state",
                     "queued", "flight", "conns", "rate", "delivered", "deferred", "bounced", "expired", "throttled",
                     "suspended until");
  for (const auto& r : rows) {
    out += fmt::format("{:<28} {:<10} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>9}  {}\n",
                       r.value(name_key, ""), r.value("state", ""), r.value("queued", std::int64_t{0}),
                       r.value("in_flight", std::int64_t{0}), cell_limit(r), cell_rate(r),
                       r.value("delivered", std::uint64_t{0}), r.value("deferred", std::uint64_t{0}),
                       r.value("bounced", std::uint64_t{0}), r.value("expired", std::uint64_t{0}),
                       r.value("throttled", std::uint64_t{0}), cell_until(r.value("suspended_until", std::int64_t{0}), now_s));
  }
}

}  // namespace

std::filesystem::path token_file(const Config& config) { return config.queue_path / "http.token"; }

std::optional<nlohmann::json> fetch_live_status(const Config& config) {
  HttpResponse response;
  try {
    response = http_call(config.http_listen, "GET", "/api/status", {}, {}, kStatusTimeout);
  } catch (const std::exception&) {
    return std::nullopt;  // no daemon: the caller reads the store instead
  }
  if (response.status != 200) return std::nullopt;
  auto status = json::parse(response.body, nullptr, false);
  if (!status.is_object()) return std::nullopt;
  return status;
}

std::string format_live_status(const nlohmann::json& status) {
  std::string out;
  const std::int64_t now_s = status.value("time", std::int64_t{0}) / 1000;
  out += fmt::format("kurier serve: live status at {}\n\n", iso_time(status.value("time", std::int64_t{0}), false));
  table(out, status.value("domains", json::array()), "domain", now_s);
  const auto providers = status.value("providers", json::array());
  if (!providers.empty()) {
    out += "\n";
    table(out, providers, "provider", now_s);
  }
  out += fmt::format("\n{:<28} {:>7} {:>7} {:>6} {:>9} {:>8} {:>8} {:>7} {:>10}\n", "campaign", "total", "queued",
                     "flight", "delivered", "deferred", "bounced", "expired", "suppressed");
  for (const auto& c : status.value("campaigns", json::array()))
    out += fmt::format("{:<28} {:>7} {:>7} {:>6} {:>9} {:>8} {:>8} {:>7} {:>10}\n", c.value("campaign", ""),
                       c.value("total", 0), c.value("queued", 0), c.value("in_flight", 0), c.value("delivered", 0),
                       c.value("deferred", 0), c.value("bounced", 0), c.value("expired", 0), c.value("suppressed", 0));
  return out;
}

int serve_command(const ServeOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log_level);
  const std::string config_name = config.file.empty() ? "kurier.toml" : config.file.string();
  required_verp_secret(config);
  auto listen = parse_host_port(config.http_listen);
  if (!listen) throw InputError(config_name, 0, "http.listen", "not a host:port address: \"" + config.http_listen + "\"");
  // Without TLS in front, the token and the API travel in clear: only loopback is
  // safe by default; another address is an explicit decision shown by a set token.
  if (!is_loopback_host(listen->host) && config.http_token.empty())
    throw InputError(config_name, 0, "http.token",
                     "is required to listen on the non-loopback address " + config.http_listen);

  // Before any thread starts: every thread inherits the blocked set.
  sigset_t signals = SignalWatcher::signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto log = kurier::log::get("serve");
  std::filesystem::create_directories(config.queue_path);
  auto store = queue::open_rocksdb_store(config.queue_path.string());
  const std::string token = load_token(config, true);
  Delivery delivery(*store, config);
  CampaignCounts counts(*store, delivery);
  Api api(config, *store, delivery, counts, token);
  std::mutex store_failure_mutex;
  std::string store_failure;  // an intake that failed on the queue: exit 1 with it
  api.on_store_failure([&](const std::string& what) {
    {
      std::lock_guard lock(store_failure_mutex);
      if (store_failure.empty()) store_failure = what;
    }
    delivery.stop();
  });
  HttpServer http(config.http_listen, [&api](const HttpRequest& r) { return api(r); });
  // DSNs, ARF reports and auto-replies for the VERP domains, applied to the same store.
  // `[bounce] listen = ""` leaves it off (e.g. bounces arrive through a Maildir).
  std::unique_ptr<BounceListener> bounces;
  if (!config.bounce_listen.empty()) {
    bounces = std::make_unique<BounceListener>(*store, config);
    bounces->start();
  }
  std::atomic<bool> stop_requested{false};
  SignalWatcher watcher([&](int signal) {
    if (stop_requested.exchange(true)) return;
    log->info("event=stopping signal={}", signal == SIGTERM ? "TERM" : "INT");
    delivery.stop();
  });
  log->info("event=serve_started http={}:{} bounce_port={} queue={}", listen->host, http.port(),
            bounces ? bounces->port() : 0, config.queue_path.string());
  std::fprintf(stderr, "kurier: serving on http://%s:%u (queue %s)\n", listen->host.c_str(), unsigned{http.port()},
               config.queue_path.c_str());

  int status = 0;
  try {
    delivery.run([&] { return stop_requested.load(); });
  } catch (const std::exception& e) {
    log->error("event=delivery_failed error=\"{}\"", e.what());
    std::fprintf(stderr, "kurier: %s\n", e.what());
    status = 1;
  }
  {
    std::lock_guard lock(store_failure_mutex);
    if (status == 0 && !store_failure.empty()) {
      std::fprintf(stderr, "kurier: %s\n", store_failure.c_str());
      status = 1;
    }
  }
  http.stop();
  if (bounces) bounces->stop();
  log->info("event=serve_stopped");
  return status;
}

int submit_command(const SubmitOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log_level);
  // Bad campaign.toml is reported here; the CSV and template are checked by the
  // daemon's intake, which reports file, line and field the same way.
  CampaignSpec spec = load_campaign(options.campaign);
  std::string token = load_token(config, false);
  if (token.empty()) {
    std::fprintf(stderr, "kurier: no HTTP token: set [http] token or start `kurier serve` (it writes %s)\n",
                 token_file(config).c_str());
    return 1;
  }
  const json body = {{"campaign", std::filesystem::absolute(spec.file).lexically_normal().string()}};
  HttpResponse response;
  try {
    response = http_call(config.http_listen, "POST", "/api/campaigns", body.dump(), token, std::chrono::minutes(10));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kurier: no daemon answers at %s (%s): start `kurier serve`\n", config.http_listen.c_str(),
                 e.what());
    return 1;
  }
  auto answer = json::parse(response.body, nullptr, false);
  if (response.status == 400) {
    std::fprintf(stderr, "kurier: %s\n", answer.is_object() ? answer.value("error", response.body).c_str() : response.body.c_str());
    return 2;
  }
  if (response.status != 200 || !answer.is_object()) {
    std::fprintf(stderr, "kurier: the daemon answered %d: %s\n", response.status,
                 answer.is_object() ? answer.value("error", "").c_str() : response.body.c_str());
    return 1;
  }
  if (answer.value("resumed", false)) {
    fmt::print("kurier: campaign {} is already queued ({} recipients)\n", answer.value("campaign", ""),
               answer.value("rows", 0));
  } else {
    fmt::print("kurier: campaign {} submitted: {} recipients, {} queued, {} suppressed\n", answer.value("campaign", ""),
               answer.value("rows", 0), answer.value("queued", 0), answer.value("suppressed", 0));
  }
  return 0;
}

namespace {

std::atomic<bool> g_top_interrupted{false};
extern "C" void on_top_signal(int) { g_top_interrupted = true; }

// Non-canonical, no-echo stdin for single keys (q), restored on destruction.
class RawTerminal {
 public:
  RawTerminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG kept: Ctrl-C still signals
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

// Waits up to `period` for a key; true if it was q/Q.
bool quit_key(std::chrono::milliseconds period, bool terminal) {
  if (!terminal) {
    std::this_thread::sleep_for(period);
    return false;
  }
  pollfd fd{STDIN_FILENO, POLLIN, 0};
  if (poll(&fd, 1, static_cast<int>(period.count())) <= 0) return false;
  char c = 0;
  return ::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q');
}

}  // namespace

int top_command(const TopOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log_level);
  g_top_interrupted = false;
  std::signal(SIGINT, on_top_signal);
  std::signal(SIGTERM, on_top_signal);
  int status = 0;
  {
    RawTerminal terminal;
    const bool tty = isatty(STDOUT_FILENO);
    for (int i = 0; options.iterations == 0 || i < options.iterations; ++i) {
      auto live = fetch_live_status(config);
      std::string screen = live ? format_live_status(*live)
                                : fmt::format("kurier top: no daemon answers at {} (start `kurier serve`)\n",
                                              config.http_listen);
      if (tty) std::fputs("\033[H\033[2J", stdout);  // home + clear
      std::fputs(screen.c_str(), stdout);
      if (tty) std::fputs("\n(q to quit)", stdout);
      std::fflush(stdout);
      status = live ? 0 : 1;
      if (g_top_interrupted) break;
      if (options.iterations != 0 && i + 1 == options.iterations) break;
      if (quit_key(kTopRefresh, terminal.active()) || g_top_interrupted) break;
    }
    if (tty) std::fputs("\n", stdout);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return status;
}

}  // namespace kurier::engine
