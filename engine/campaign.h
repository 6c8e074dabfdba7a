// Campaign intake: campaign.toml + recipients.csv + template.eml -> the queue.
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

#include "queue/store.h"

namespace kurier::engine {

struct DkimSpec {
  std::string domain;
  std::string selector;
  std::filesystem::path key;
};

struct CampaignSpec {
  std::filesystem::path file;  // campaign.toml
  std::string id;
  std::string from;
  std::filesystem::path template_path;    // resolved against the campaign file's folder
  std::filesystem::path recipients_path;
  std::string verp_domain;
  std::optional<DkimSpec> dkim;
};

// Throws InputError.
CampaignSpec load_campaign(const std::filesystem::path& file);

struct IntakeResult {
  queue::CampaignId id = 0;
  bool resumed = false;        // the campaign was already queued
  std::uint64_t rows = 0;      // recipients read
  std::uint64_t queued = 0;
  std::uint64_t suppressed = 0;
  std::map<std::string, std::uint64_t> suppressed_by_reason;
};

// Queues the campaign (committed and synced before returning). Throws InputError
// for bad input, queue::StoreError for disk failures.
IntakeResult submit_campaign(queue::Store& store, const CampaignSpec& spec, std::int64_t now_ms);

}  // namespace kurier::engine
