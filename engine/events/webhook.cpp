// Webhook runners (contract in webhook.h): one thread each, reading the event log and
// POSTing signed batches with libcurl, the position synced into the queue after each
// acknowledged batch. Failures are retried with backoff, logged and counted.
#include "engine/events/webhook.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/text.h"
#include "engine/events/event_log.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {
namespace {

// How often an idle webhook looks for new lines: well under a second of latency for
// ops, a stat() and an open() per poll.
constexpr std::chrono::milliseconds kIdlePoll{200};
constexpr std::chrono::milliseconds kFirstRetry{1000};
constexpr std::chrono::milliseconds kMaxRetry{60000};
// A webhook that filters most lines out saves its position at most this often while
// it sends nothing (each save is a synced write); a restart re-reads at most that much.
constexpr std::chrono::seconds kSkipSaveInterval{1};

std::once_flag curl_init;

std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

}  // namespace

std::string webhook_signature(std::string_view body, std::string_view secret) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return "sha256=" + text::to_hex({reinterpret_cast<const char*>(mac), len});
}

std::chrono::milliseconds webhook_retry_delay(int failures) {
  auto delay = kFirstRetry;
  for (int i = 1; i < failures && delay < kMaxRetry; ++i) delay *= 2;
  return std::min(delay, kMaxRetry);
}

std::string webhook_body(const std::vector<std::string>& lines, const std::vector<EventType>& types,
                         std::size_t* count) {
  std::string body;
  std::size_t n = 0;
  for (const auto& line : lines) {
    if (!types.empty()) {
      auto type = event_type_from_string(line_type(line));
      if (!type || std::find(types.begin(), types.end(), *type) == types.end()) continue;
    }
    body += n++ ? ",\n" : "[";
    body += line;
  }
  if (n) body += "]";
  if (count) *count = n;
  return body;
}

std::string webhook_position_key(const WebhookConfig& webhook) { return "webhook/" + webhook.name; }

struct Webhooks::Runner {
  Runner(WebhookConfig config_in, std::filesystem::path file_in, queue::Store& store_in, GlobalCounters* counters_in)
      : config(std::move(config_in)), file(std::move(file_in)), store(store_in), counters(counters_in) {}
  ~Runner() {
    if (curl) curl_easy_cleanup(curl);
  }

  void run();
  bool deliver(const std::string& body, std::size_t count);  // false: stopping
  long post(const std::string& body, std::size_t count, std::string& error);  // HTTP status, 0: no answer
  LogPosition load_position();
  void save_position(const LogPosition& position);
  void pause(std::chrono::milliseconds how_long) {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, how_long, [&] { return stopping.load(); });
  }
  void count(std::atomic<std::uint64_t> GlobalCounters::*counter, std::uint64_t n) {
    if (counters) (counters->*counter).fetch_add(n, std::memory_order_relaxed);
  }

  const WebhookConfig config;
  const std::filesystem::path file;
  queue::Store& store;
  GlobalCounters* const counters;
  std::shared_ptr<spdlog::logger> log = kurier::log::get("events");
  CURL* curl = nullptr;
  std::mutex mutex;
  std::condition_variable cv;
  std::atomic<bool> stopping{false};
  std::thread thread;
};

LogPosition Webhooks::Runner::load_position() {
  try {
    if (auto text = store.control(webhook_position_key(config)))
      if (auto position = position_from_string(*text)) return *position;
  } catch (const std::exception& e) {
    log->error("event=webhook_position_unreadable webhook=\"{}\" error=\"{}\"", config.name, e.what());
  }
  return {};  // from the oldest file kept
}

void Webhooks::Runner::save_position(const LogPosition& position) {
  try {
    store.put_control(webhook_position_key(config), to_string(position));
  } catch (const std::exception& e) {
    // Kept in memory: at worst a restart sends the batch again.
    log->error("event=webhook_position_not_saved webhook=\"{}\" error=\"{}\"", config.name, e.what());
  }
}

void Webhooks::Runner::run() {
  LogPosition position = load_position();
  auto saved = std::chrono::steady_clock::now();
  while (!stopping) {
    ReadBatch batch = read_events(file, position, config.batch);
    if (batch.lost > 0) {
      count(&GlobalCounters::webhook_events_lost, batch.lost);
      log->warn("event=webhook_events_lost webhook=\"{}\" lost={} (rotated away before they were sent)", config.name,
                batch.lost);
    }
    if (batch.lines.empty()) {
      position = batch.end;
      pause(kIdlePoll);
      continue;
    }
    std::size_t n = 0;
    const std::string body = webhook_body(batch.lines, config.events, &n);
    if (n > 0 && !deliver(body, n)) return;
    position = batch.end;
    if (n > 0 || std::chrono::steady_clock::now() - saved >= kSkipSaveInterval) {
      save_position(position);
      saved = std::chrono::steady_clock::now();
    }
  }
  save_position(position);  // what was skipped since the last save
}

bool Webhooks::Runner::deliver(const std::string& body, std::size_t n) {
  for (int failures = 0; !stopping;) {
    std::string error;
    const long status = post(body, n, error);
    if (status >= 200 && status < 300) {
      count(&GlobalCounters::webhook_events_sent, n);
      if (failures > 0) log->warn("event=webhook_recovered webhook=\"{}\" after_failures={}", config.name, failures);
      return true;
    }
    ++failures;
    count(&GlobalCounters::webhook_failures, 1);
    const auto delay = webhook_retry_delay(failures);
    log->warn("event=webhook_failed webhook=\"{}\" status={} error=\"{}\" events={} retry_in_ms={}", config.name,
              status, error, n, delay.count());
    pause(delay);
  }
  return false;
}

long Webhooks::Runner::post(const std::string& body, std::size_t n, std::string& error) {
  if (!curl) curl = curl_easy_init();  // one handle: its connection is kept alive
  if (!curl) {
    error = "curl_easy_init failed";
    return 0;
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, ("X-Kurier-Signature: " + webhook_signature(body, config.secret)).c_str());
  headers = curl_slist_append(headers, ("X-Kurier-Event-Count: " + std::to_string(n)).c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(curl, CURLOPT_URL, config.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kurier-webhook/1");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  // stop() ends a request in progress: the progress callback aborts the transfer.
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &stopping);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION,
                   +[](void* stop, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
                     return static_cast<std::atomic<bool>*>(stop)->load() ? 1 : 0;
                   });
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  else error = curl_easy_strerror(rc);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  return status;
}

Webhooks::Webhooks(std::vector<WebhookConfig> hooks, std::filesystem::path log_file, queue::Store& store,
                   GlobalCounters* counters) {
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  for (auto& hook : hooks) runners_.push_back(std::make_unique<Runner>(std::move(hook), log_file, store, counters));
}

Webhooks::~Webhooks() { stop(); }

void Webhooks::start() {
  for (auto& r : runners_) {
    Runner* runner = r.get();
    runner->thread = std::thread([runner] { runner->run(); });
  }
}

void Webhooks::stop() {
  for (auto& r : runners_) {
    {
      std::lock_guard lock(r->mutex);
      r->stopping = true;
    }
    r->cv.notify_all();
  }
  for (auto& r : runners_)
    if (r->thread.joinable()) r->thread.join();
}

}  // namespace kurier::engine
