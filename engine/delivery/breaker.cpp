// Circuit breakers (engine/delivery/breaker.h): the pure policy and the counters.
// Any thread (one mutex); never throws but for allocation.
#include "engine/delivery/breaker.h"

#include <fmt/format.h>

namespace kurier::engine {

std::optional<std::string> breaker_finding(const BreakerCounts& counts, const BreakerConfig& config,
                                           const std::string& scope) {
  const std::string at = scope.empty() ? "" : " at " + scope;
  if (config.hard_bounce_rate > 0 && counts.answers >= config.min_attempts) {
    const double rate = static_cast<double>(counts.hard) / static_cast<double>(counts.answers);
    if (rate >= config.hard_bounce_rate)
      return fmt::format("hard-bounce rate {:.1f}% over {} answers{} (limit {:.1f}% over {})", rate * 100,
                         counts.answers, at, config.hard_bounce_rate * 100, config.min_attempts);
  }
  if (config.complaint_rate > 0 && counts.delivered >= config.min_deliveries) {
    const double rate = static_cast<double>(counts.complaints) / static_cast<double>(counts.delivered);
    if (rate >= config.complaint_rate)
      return fmt::format("complaint rate {:.2f}% over {} deliveries{} (limit {:.2f}% over {})", rate * 100,
                         counts.delivered, at, config.complaint_rate * 100, config.min_deliveries);
  }
  return std::nullopt;
}

std::optional<std::string> Breakers::trip(queue::CampaignId campaign, std::optional<std::string> finding) {
  if (!finding) return std::nullopt;
  bool& tripped = tripped_[campaign];
  if (tripped) return std::nullopt;
  tripped = true;
  ++trips_;
  return finding;
}

std::optional<std::string> Breakers::observe(queue::CampaignId campaign, const std::string& provider,
                                             queue::State state, const std::string& category, int reply_code) {
  if (reply_code == 0) return std::nullopt;  // no MX answered (DNS, connect): providers saw nothing
  if (state != queue::State::delivered && state != queue::State::bounced) return std::nullopt;
  std::lock_guard lock(mutex_);
  BreakerCounts& whole = campaigns_[campaign];
  BreakerCounts& at = providers_[{campaign, provider}];
  for (BreakerCounts* c : {&whole, &at}) {
    ++c->answers;
    if (state == queue::State::bounced && category == "hard") ++c->hard;
  }
  // Only the hard-bounce breaker here: complaints come from the queue's counts.
  BreakerConfig bounces_only = config_;
  bounces_only.complaint_rate = 0;
  if (auto f = trip(campaign, breaker_finding(whole, bounces_only, ""))) return f;
  return trip(campaign, breaker_finding(at, bounces_only, provider));
}

std::optional<std::string> Breakers::observe_complaints(queue::CampaignId campaign, std::uint64_t delivered,
                                                        std::uint64_t complaints) {
  std::lock_guard lock(mutex_);
  BreakerCounts counts;
  const std::uint64_t base_delivered = delivered_base_[campaign], base_complaints = complaint_base_[campaign];
  counts.delivered = delivered > base_delivered ? delivered - base_delivered : 0;
  counts.complaints = complaints > base_complaints ? complaints - base_complaints : 0;
  BreakerConfig complaints_only = config_;
  complaints_only.hard_bounce_rate = 0;
  // Remember the latest figures: a reset() counts from them.
  last_seen_[campaign] = {delivered, complaints};
  return trip(campaign, breaker_finding(counts, complaints_only, ""));
}

void Breakers::reset(queue::CampaignId campaign) {
  std::lock_guard lock(mutex_);
  campaigns_.erase(campaign);
  for (auto it = providers_.begin(); it != providers_.end();)
    it = it->first.first == campaign ? providers_.erase(it) : std::next(it);
  tripped_.erase(campaign);
  auto seen = last_seen_.find(campaign);
  if (seen != last_seen_.end()) {
    delivered_base_[campaign] = seen->second.first;
    complaint_base_[campaign] = seen->second.second;
  }
}

std::uint64_t Breakers::trips() const {
  std::lock_guard lock(mutex_);
  return trips_;
}

}  // namespace kurier::engine
