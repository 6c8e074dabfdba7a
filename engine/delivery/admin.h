// Operator actions on queued recipients: which pending recipients a selector names
// (a campaign, a domain, a provider) and what each action makes of them — cancel
// (`cancelled`), purge (`bounced`, category other, reason admin), retry (due now).
// The builders are pure; select_pending() reads the store (any thread but a network
// loop). Applying is the caller's: through the running engine (Delivery::apply_admin,
// which skips recipients in flight) or, with no engine, apply_offline().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/delivery/shaping/shaping.h"
#include "queue/store.h"

namespace kurier::engine {

class CampaignEvents;  // engine/events/campaign_events.h

enum class AdminAction : std::uint8_t { cancel, purge, retry };
std::string_view to_string(AdminAction action);

// Exactly one of the three is set (the CLI and API refuse anything else).
struct Selector {
  std::optional<queue::CampaignId> campaign;
  std::string domain;    // recipients at this domain (A-labels, lower case)
  std::string provider;  // recipients whose domain or last MX host a [provider.NAME] rule matches
};

// True when `recipient` is pending (queued or deferred) and the selector names it.
// A provider is known from the domain (match_domains) or, for MX rules, from the MX
// host of the recipient's last attempt; a never-tried recipient of an MX-matched
// provider is not selected by provider (its MX is not known yet).
bool selects(const Selector& selector, const ShapingRules& rules, const queue::Recipient& recipient);

// The change `action` makes to one pending recipient, as an outcome for Store::record
// (previous_due_ms is its current schedule entry); nullopt when the action does not
// apply (retry of a recipient already due, any action on a final one). `reason` is the
// operator's text; purge logs an attempt saying so.
std::optional<queue::Outcome> admin_outcome(AdminAction action, const queue::Recipient& recipient,
                                            const std::string& reason, std::int64_t now_ms);

// The changes of one operator action: outcomes for Store::record and, in the same
// order, each recipient's address (for the event log).
struct AdminChanges {
  std::vector<queue::Outcome> outcomes;
  std::vector<std::string> addresses;
};

// Every change of `action` for the recipients `selector` names, scanning the campaign
// (or every committed campaign for a domain or provider).
AdminChanges select_changes(queue::Store& store, const Selector& selector, const ShapingRules& rules,
                            AdminAction action, const std::string& reason, std::int64_t now_ms);

// Records the changes on a store no engine is delivering from, in synced batches, and
// logs them (`events` null: no event log). Returns how many were recorded.
std::size_t apply_offline(queue::Store& store, const AdminChanges& changes, CampaignEvents* events,
                          std::int64_t now_ms);

// Operator suspensions survive restarts as control records "suspend/<scope>".
void persist_hold(queue::Store& store, const std::string& scope, const Shaper::Hold& hold);
void erase_hold(queue::Store& store, const std::string& scope);
std::map<std::string, Shaper::Hold> load_holds(queue::Store& store, std::int64_t now_ms);  // those in force

// "domain:<d>" or "provider:<name>" for a selector naming a domain or a provider.
std::string hold_scope(const Selector& selector);

}  // namespace kurier::engine
