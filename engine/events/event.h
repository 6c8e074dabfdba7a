// One entry of the event log (docs/DESIGN.md "Event log"): a plain record per state
// change of a recipient or later event, its JSON line, and the builders that make one
// from what the queue records. Pure functions and plain data; any thread; they do not
// fail (unknown type names are nullopt).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "queue/store.h"

namespace kurier::engine {

enum class EventType : std::uint8_t {
  intake,       // queued at intake
  suppressed,   // never sent: hygiene verdict or suppression list at intake
  delivered,    // an attempt's outcome, as recorded (the new state) ...
  deferred,
  bounced,
  expired,
  cancelled,
  late_bounce,  // later events (queue::EventKind), after add_event()
  complaint,
  unsubscribe,
  autoreply,
  delay,
  admin,        // an operator's action on a recipient (purge, ...)
};
inline constexpr std::size_t kEventTypes = 13;
std::string_view to_string(EventType type);
std::optional<EventType> event_type_from_string(std::string_view name);

// The fields users of other MTAs know (PowerMTA accounting, KumoMTA logs). Empty
// strings and zeros mean "not known" or "does not apply"; to_json writes them all so
// every line has the same keys.
struct EventRecord {
  std::uint64_t id = 0;  // set by the log when written: unique, never reused
  EventType type = EventType::intake;
  std::int64_t time_ms = 0;
  std::string campaign;   // its name (campaign.toml `id`)
  std::string recipient;
  std::string sender;     // the VERP return path the message carried (engine/core/verp.h)
  std::string source;     // the egress source (empty until sources exist)
  std::string mx;         // MX host name of the attempt
  std::string ip;         // MX address of the attempt
  std::string tls;        // "TLSv1.3 TLS_AES_256_GCM_SHA384", "" without TLS
  std::uint32_t attempt = 0;  // the recipient's attempt number (0: none yet)
  int code = 0;               // SMTP reply code (0: no reply)
  std::string enhanced;
  std::string text;       // reply text, local error, or a later event's detail
  std::string reason;     // Sisimai vocabulary, suppression or admin reason
  std::string category;   // hard, soft, block, other
  std::int64_t queued_ms = 0;  // when its campaign was queued
  std::uint64_t size = 0;      // message bytes (0: not known)
  std::string node;            // the cluster node (empty: single node)
};

// One compact JSON object as one line (without the line break), keys in this order:
// id, type, time (ISO 8601 UTC), then the fields above (queued_time as ISO 8601).
// Readers may rely on the line starting {"id":N,"type":"T". Written directly: the event
// log's hot path (an intake writes a million). Invalid UTF-8 in a text (reply texts
// come from the network) becomes U+FFFD. `id` replaces event.id when given.
std::string to_json_line(const EventRecord& event);
void append_json_line(std::string& out, const EventRecord& event, std::uint64_t id);

// The facts of a campaign every event of it carries.
struct CampaignFacts {
  std::string name;
  std::int64_t queued_ms = 0;  // campaign created_ms
};
CampaignFacts facts_of(const queue::Campaign& campaign);

// A recorded delivery outcome: type = the new state; the attempt's MX, address, TLS
// and reply when it has one; time = the attempt's, else `now_ms`.
EventRecord outcome_event(const queue::Outcome& outcome, const CampaignFacts& campaign, std::string recipient,
                          std::string sender, std::int64_t now_ms);
// A recipient as stored at intake: `intake` when queued, `suppressed` with its reason.
EventRecord intake_event(const queue::Recipient& recipient, const CampaignFacts& campaign, std::int64_t now_ms);
// A later event recorded by add_event(): late_bounce, complaint, unsubscribe, ...
EventRecord later_event(const queue::Event& event, const queue::Recipient& recipient, const CampaignFacts& campaign,
                        std::string sender);
// An operator's action on one recipient (purge, cancel by hand, ...): type admin,
// `action` in text ("purge", "cancel"), the operator's words in reason.
EventRecord admin_event(const queue::Recipient& recipient, const CampaignFacts& campaign, std::string_view action,
                        std::string reason, std::int64_t now_ms);

// Where events go: the event log (event_log.h) or a test's fake. append() never
// throws and never blocks for long: callers are the delivery result writer, intake
// and the bounce threads.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void append(std::span<const EventRecord> events) noexcept = 0;
};

}  // namespace kurier::engine
