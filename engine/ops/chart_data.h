// The document behind the dashboard's charts (GET /api/history): per provider and per
// busiest domain, the last hour of delivered, deferred and bounced per minute, summed
// from the metrics' histories (history.h). Built on an HTTP handler thread; never fails.
//
//   {"time": ms, "start": ms of the oldest bucket, "bucket_ms": 60000,
//    "providers": [{"provider": "gmail", "delivered": [60 counts, oldest first],
//                   "deferred": [...], "bounced": [...]}],
//    "domains":   [{"domain": "gmail.com", "provider": "gmail", ...same arrays}]}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/ops/history.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {

// Domains charted at most: the busiest of the hour. A long tail of small domains
// would make the document (60 x 3 numbers each) and the page heavy for nothing.
inline constexpr std::size_t kChartDomains = 40;

struct DestinationHistory {
  std::string name;
  std::string provider;  // domains: the linked provider ("" = none)
  History::Counts counts{};
  std::uint64_t total() const;  // every count of the hour
};

// Keeps the `limit` destinations with the largest total() (ties: by name), busiest first.
void keep_busiest(std::vector<DestinationHistory>& list, std::size_t limit);

// Sums domains into their providers (by DestinationHistory::provider), sorted by name.
std::vector<DestinationHistory> provider_histories(const std::vector<DestinationHistory>& domains);

nlohmann::json chart_data_json(const Metrics& metrics, std::int64_t now_ms);

}  // namespace kurier::engine
