// Webhooks: each [[webhook]] follows the event log (event_reader.h) on a thread of its
// own and POSTs batches of events as a JSON array, signed:
//   X-Kurier-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>
//   X-Kurier-Event-Count: <events in the body>
// A 2xx answer acknowledges the batch: the position after it is then stored in the
// queue (Store::put_control("webhook/<name>"), synced), so a restart resumes after
// the last acknowledged batch. Anything else (an error status, a refused connection,
// a timeout) is retried with exponential backoff, the same batch again. Delivery at
// least once: a receiver sees a batch twice only if kurier stopped between its 2xx
// and the position's sync; it dedupes on the event id.
//
// A webhook without a stored position starts at the oldest file of the log. The
// delivery loop never waits on a webhook: they only read the files. Threading:
// construct, start() and destroy on one thread; each webhook runs on its own thread
// until stop() (or the destructor). HTTP by libcurl (https too). Failures are logged
// and counted in the metrics, never thrown.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/events/event_reader.h"
#include "engine/events/events_config.h"
#include "queue/store.h"

namespace kurier::engine {

struct GlobalCounters;  // engine/ops/metrics.h

// "sha256=" + lower-case hex of HMAC-SHA256(secret, body).
std::string webhook_signature(std::string_view body, std::string_view secret);

// The wait before retry number `failures` (1, 2, ...): 1 s doubling up to 60 s.
std::chrono::milliseconds webhook_retry_delay(int failures);

// The lines of `batch` whose type the webhook takes (all when `types` is empty), as a
// JSON array; "" when none.
std::string webhook_body(const std::vector<std::string>& lines, const std::vector<EventType>& types,
                         std::size_t* count = nullptr);

// The control record name of a webhook's position.
std::string webhook_position_key(const WebhookConfig& webhook);

class Webhooks {
 public:
  // Every reference must outlive this object. `log_file`: the event log's live file.
  Webhooks(std::vector<WebhookConfig> hooks, std::filesystem::path log_file, queue::Store& store,
           GlobalCounters* counters = nullptr);
  ~Webhooks();  // stop()
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  void start();
  // Stops every webhook: a POST in progress ends within its timeout. Idempotent.
  void stop();

  struct Runner;

 private:
  std::vector<std::unique_ptr<Runner>> runners_;
};

}  // namespace kurier::engine
