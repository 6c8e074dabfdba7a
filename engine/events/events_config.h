// The [events] and [[webhook]] sections of kurier.toml: where the event log goes, how
// it rotates, and where its events are pushed. Read by engine/core/config.cpp at
// start-up (main thread); problems, unknown keys and event type names included, are
// InputError naming kurier.toml, the line and the field.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "engine/events/event.h"

namespace kurier::engine {

struct EventsConfig {  // [events]
  bool enabled = true;
  std::filesystem::path file;  // "" = <[queue] path>/events.jsonl (event_log_file())
  // The live file is rotated once it reaches this size: 256 MiB is about a million
  // events, small enough to grep and ship, few enough files for a busy day.
  std::uint64_t max_bytes = 256ull << 20;
  // Rotated files kept (the oldest are deleted): with the default size, 2.5 GB of
  // history, which a webhook receiver that was down for a day can still catch up on.
  std::uint32_t keep = 10;
  // intake/suppressed events at intake (one per recipient: on a 1M-recipient list,
  // a million lines before the first delivery). Off leaves the outcomes only.
  bool intake = true;
};

struct WebhookConfig {  // one [[webhook]]
  std::string name;    // the key of its position in the queue; default: the url
  std::string url;     // http:// or https://
  std::string secret;  // HMAC-SHA256 key of the X-Kurier-Signature header
  std::vector<EventType> events;  // the types it receives; empty = all
  // Most events per POST: large enough to amortise a request, small enough that a
  // receiver's timeout (often 10-30 s) is never reached processing one.
  std::size_t batch = 100;
  std::chrono::milliseconds timeout{10000};  // per request, connect included
};

// Reads the [events] table of `file`; a relative `file` key resolves against `base`.
void read_events_section(const toml::table& section, const std::string& file, const std::filesystem::path& base,
                         EventsConfig& config);
// Reads the [[webhook]] array of `file`. Names must be unique; webhooks follow the
// event log, so `events` (read before) must have it enabled.
std::vector<WebhookConfig> read_webhook_section(const toml::node& node, const std::string& file,
                                                const EventsConfig& events);

// The event log's live file: [events] file, or <queue path>/events.jsonl.
std::filesystem::path event_log_file(const EventsConfig& config, const std::filesystem::path& queue_path);

}  // namespace kurier::engine
