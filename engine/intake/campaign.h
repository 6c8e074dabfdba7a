// Campaign intake: campaign.toml (read by campaign_spec.h) + recipients.csv +
// template.eml -> the queue.
//
// Everything is validated while streaming the CSV into a CampaignWriter; any bad
// input (unreadable file, wrong column count, broken address, CR/LF in a field,
// unknown template field, missing [verp] domain) throws InputError naming file,
// line and field, and the writer is aborted: nothing of the campaign is queued.
// Submitting the same campaign again (same id, same inputs) resumes it; the same
// id with different inputs is an error. Runs on the caller's thread; blocks on I/O.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "engine/core/config.h"
#include "engine/intake/campaign_spec.h"
#include "engine/intake/hygiene/hygiene.h"
#include "queue/store.h"

namespace kurier::engine {

struct IntakeResult {
  queue::CampaignId id = 0;
  bool resumed = false;        // the campaign was already queued
  std::uint64_t rows = 0;      // recipients read
  std::uint64_t queued = 0;
  std::uint64_t suppressed = 0;
  std::map<std::string, std::uint64_t> suppressed_by_reason;
  // List hygiene: rows flagged per verdict name, warned and rejected alike (a row
  // may count under several), and the rows queued despite a warning.
  std::map<std::string, std::uint64_t> verdicts;
  std::uint64_t warned = 0;
};

// List hygiene at intake (engine/intake/hygiene/hygiene.h). No rules given: the built-in lists and
// default policies. `dns` null: no no_mail_host verdicts. A rejected row is stored
// `suppressed` with the verdict's name as its reason ("suppressed: <list reason>"
// for the suppression list); a warned row is queued and counted.
struct IntakeHygiene {
  const Hygiene* rules = nullptr;
  MailHostLookup* dns = nullptr;
};

class CampaignEvents;  // engine/events/campaign_events.h

// Queues the campaign (committed and synced before returning); after the commit,
// `events` (if any) logs an intake or suppressed event per recipient. DKIM keys (the
// campaign's own, else the matching ones of `key_table`) are loaded and checked first:
// a missing, unreadable or misaligned key is an InputError here, never a failure in
// the middle of sending. Throws InputError for bad input, queue::StoreError for disk
// failures.
IntakeResult submit_campaign(queue::Store& store, const CampaignSpec& spec, std::int64_t now_ms,
                             const std::vector<DkimKey>& key_table = {}, const IntakeHygiene& hygiene = {},
                             CampaignEvents* events = nullptr);

// The domain of a From header value ("Name <a@b.c>" or "a@b.c"), lower case.
std::string from_address_domain(const std::string& from);

}  // namespace kurier::engine
