// Applies inbound mail, once bounce/ has parsed it, to the queue: the VERP token in
// the message names the campaign and recipient; the message's kind decides what is
// recorded (docs/DESIGN.md "Recipient states": later events attach to a recipient):
//
//   bounce   -> late_bounce event; hard: the address is suppressed at once,
//               soft: one more soft bounce in a row (suppressed at [bounce] soft_limit)
//   delay    -> delay event, noted only
//   feedback -> complaint event + suppression ("complaint <feedback type>");
//               opt-out / unsubscribe reports -> unsubscribe event + suppression
//   autoreply-> autoreply event; never a bounce, never a suppression
//   delivered, reply, unknown -> nothing recorded (counted)
//
// A message without a valid token (foreign address, bad HMAC, unknown recipient) is
// ignored and counted as unmatched: a forged token must not suppress anyone.
//
// Also the inline side: address_update_for() says what a delivery outcome means for
// the address (a hard 5xx suppresses it in the same synced batch as the outcome).
//
// Threading: a BounceApplier is thread-safe (the store is); apply() blocks on a
// synced write and returns once the result is durable. Store failures throw
// queue::StoreError.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "bounce/bounce.h"
#include "engine/core/config.h"
#include "engine/core/verp.h"
#include "queue/store.h"

namespace kurier::engine {

class CampaignEvents;  // engine/events/campaign_events.h

struct ApplyResult {
  bool matched = false;                    // a valid token named a recipient in the queue
  queue::RecipientKey recipient;           // when matched
  std::string address;                     // the matched recipient's address
  std::optional<queue::EventKind> event;   // what was recorded, if anything
  std::string reason;                      // the event's reason
  bool suppressed = false;                 // the address was added to the suppression list now
};

// Totals over many messages (kurier bounce ingest, the listener).
struct ApplyStats {
  std::uint64_t messages = 0;
  std::uint64_t matched = 0;
  std::uint64_t unmatched = 0;
  std::uint64_t suppressed = 0;
  std::map<std::string, std::uint64_t> by_kind;   // bounce::Kind name -> messages
  std::map<std::string, std::uint64_t> by_event;  // recorded event name -> messages
  void add(const bounce::Message& message, const ApplyResult& result);
};

class BounceApplier {
 public:
  // Longest event detail kept (status + diagnostic text): enough for any real
  // diagnostic line, bounded so a hostile message cannot bloat the store.
  static constexpr std::size_t kMaxDetailBytes = 512;

  // Throws InputError when config.verp.secret is empty. `events` (if any) logs each
  // recorded event after its commit.
  BounceApplier(queue::Store& store, const Config& config, CampaignEvents* events = nullptr);

  ApplyResult apply(const bounce::Message& message, std::int64_t now_ms);

  // The first candidate whose token is valid and names an existing recipient whose
  // campaign uses the candidate's domain as its VERP domain.
  std::optional<queue::Recipient> match(const bounce::Message& message);

 private:
  queue::Store& store_;
  Verp verp_;
  std::uint32_t soft_limit_;
  CampaignEvents* events_;
};

// What an inline outcome means for the address: delivered resets the soft-bounce
// count, a hard bounce suppresses ("hard-bounce <reason>"), a soft bounce or expiry
// counts towards soft_limit. nullopt for everything else (deferred, block, ...).
std::optional<queue::AddressUpdate> address_update_for(const queue::Status& status, const std::string& address,
                                                       std::uint32_t soft_limit);

}  // namespace kurier::engine
