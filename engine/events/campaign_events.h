// What the engine's rooms call to log events: one object per process that owns the
// event log (event_log.h) and turns what the queue records into event records
// (event.h), with each campaign's name and queued time looked up once and the VERP
// sender made with [verp] secret.
//
// Callers, each right after its queue commit: the delivery result writer (recorded),
// intake (intake), the bounce listener and `kurier bounce ingest` (later), and the
// operator's actions (admin, through append()). Thread-safe; no method throws: a
// store or file error is logged and counted, and the caller goes on.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "engine/events/event.h"
#include "queue/store.h"

namespace kurier::engine {

struct Config;          // engine/core/config.h
struct GlobalCounters;  // engine/ops/metrics.h
class EventLog;         // engine/events/event_log.h
class Verp;             // engine/core/verp.h

class CampaignEvents {
 public:
  // Writes to `sink`; `verp_secret` "" leaves the sender empty.
  CampaignEvents(queue::Store& store, std::unique_ptr<EventSink> sink, const std::string& verp_secret,
                 bool intake_events = true);
  ~CampaignEvents();

  // After store.record(batch): one event per outcome, addresses[i] the recipient of
  // batch[i]. Delivery's result writer.
  void recorded(std::span<const queue::Outcome> batch, std::span<const std::string> addresses,
                std::int64_t now_ms) noexcept;
  // After the campaign's commit: intake/suppressed per recipient, read back from the
  // queue in batches (off with [events] intake = false).
  void intake(queue::CampaignId id, std::int64_t now_ms) noexcept;
  // After store.add_event(recipient.key, event) applied.
  void later(const queue::Recipient& recipient, const queue::Event& event) noexcept;
  // Events made elsewhere, e.g. admin_event() for each recipient an operator purged.
  void append(std::span<const EventRecord> events) noexcept { sink_->append(events); }

  // An operator's (or a breaker's) action on a campaign, or on a scope when `campaign`
  // is 0 (suspend --domain ...): one `admin` event without a recipient.
  void operator_action(queue::CampaignId campaign, std::string_view action, const std::string& reason,
                       std::int64_t now_ms) noexcept;

  // The campaign's name and queued time (cached); nullopt if it is not in the queue.
  std::optional<CampaignFacts> facts(queue::CampaignId id) noexcept;

 private:
  std::string sender(queue::RecipientKey key, const std::string& verp_domain) const;

  queue::Store& store_;
  std::unique_ptr<EventSink> sink_;
  std::unique_ptr<const Verp> verp_;  // null: no [verp] secret
  const bool intake_events_;
  std::mutex mutex_;  // guards campaigns_
  struct Known {
    CampaignFacts facts;
    std::string verp_domain;
  };
  std::unordered_map<queue::CampaignId, Known> campaigns_;
  std::optional<Known> known(queue::CampaignId id);
};

// The process's events as kurier.toml configures them: null with [events] enabled =
// false. Opens (creating) the log file; throws std::runtime_error if it cannot.
std::unique_ptr<CampaignEvents> open_campaign_events(const Config& config, queue::Store& store,
                                                     GlobalCounters* counters = nullptr);

}  // namespace kurier::engine
