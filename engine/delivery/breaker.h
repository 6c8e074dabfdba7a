// Circuit breakers: a campaign that burns the sender's reputation is paused before the
// mailbox providers act (they do at ~0.3 % complaints; a few percent of hard bounces
// mark a bad list). Two breakers, thresholds in kurier.toml [breaker]:
//   - hard bounces per final MX answer, per campaign and per (campaign, provider), fed
//     by the workers as outcomes are decided;
//   - complaints per delivery, per campaign, fed from the queue's counts (complaints
//     arrive by the bounce listener or ingest, days later).
// The policy (breaker_finding) is a pure function; Breakers keeps the counters (since
// the daemon started, or since the campaign was last resumed) and is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "engine/core/config.h"
#include "queue/store.h"

namespace kurier::engine {

struct BreakerCounts {
  std::uint64_t answers = 0;     // final MX answers: delivered + bounced
  std::uint64_t hard = 0;        // of them, hard bounces
  std::uint64_t delivered = 0;
  std::uint64_t complaints = 0;
};

// Why the counts trip a breaker ("hard-bounce rate 10.0% over 250 answers at gmail
// (limit 5.0% over 200)"), or nullopt. `scope` names the provider ("" = the campaign).
std::optional<std::string> breaker_finding(const BreakerCounts& counts, const BreakerConfig& config,
                                           const std::string& scope);

class Breakers {
 public:
  explicit Breakers(const BreakerConfig& config) : config_(config) {}

  // One outcome of a recipient of `campaign` at `provider` (its shaping key's provider,
  // or its domain) with the MX's reply code. Only final answers of an MX count (a
  // domain without mail hosts is a bad address, but no provider saw the attempt).
  // Returns the finding when this outcome trips a breaker of the campaign not tripped
  // before (once per campaign until reset()).
  std::optional<std::string> observe(queue::CampaignId campaign, const std::string& provider, queue::State state,
                                     const std::string& category, int reply_code);
  // The campaign's deliveries and complaints as the queue counts them.
  std::optional<std::string> observe_complaints(queue::CampaignId campaign, std::uint64_t delivered,
                                                std::uint64_t complaints);
  // After a resume: counting starts again (the operator looked and decided).
  void reset(queue::CampaignId campaign);
  std::uint64_t trips() const;

 private:
  std::optional<std::string> trip(queue::CampaignId campaign, std::optional<std::string> finding);

  const BreakerConfig& config_;
  mutable std::mutex mutex_;
  std::map<queue::CampaignId, BreakerCounts> campaigns_;
  std::map<std::pair<queue::CampaignId, std::string>, BreakerCounts> providers_;
  std::map<queue::CampaignId, std::uint64_t> complaint_base_;  // complaints/deliveries counted before a reset
  std::map<queue::CampaignId, std::uint64_t> delivered_base_;
  std::map<queue::CampaignId, std::pair<std::uint64_t, std::uint64_t>> last_seen_;  // delivered, complaints
  std::map<queue::CampaignId, bool> tripped_;
  std::uint64_t trips_ = 0;
};

}  // namespace kurier::engine
