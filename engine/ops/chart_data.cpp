// The /api/history document (see chart_data.h). HTTP handler threads; one pass over
// the domain series under the registry's mutex (60 x 3 relaxed loads each).
#include "engine/ops/chart_data.h"

#include <algorithm>
#include <map>

namespace kurier::engine {
namespace {

nlohmann::json counts_json(const DestinationHistory& d, const char* name_key) {
  nlohmann::json j = {{name_key, d.name},
                      {"delivered", d.counts[static_cast<std::size_t>(HistoryKind::delivered)]},
                      {"deferred", d.counts[static_cast<std::size_t>(HistoryKind::deferred)]},
                      {"bounced", d.counts[static_cast<std::size_t>(HistoryKind::bounced)]}};
  if (std::string_view(name_key) == "domain") j["provider"] = d.provider;
  return j;
}

}  // namespace

std::uint64_t DestinationHistory::total() const {
  std::uint64_t sum = 0;
  for (const auto& kind : counts)
    for (auto n : kind) sum += n;
  return sum;
}

void keep_busiest(std::vector<DestinationHistory>& list, std::size_t limit) {
  std::vector<std::pair<std::uint64_t, std::size_t>> order;  // total, index
  order.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) order.emplace_back(list[i].total(), i);
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return list[a.second].name < list[b.second].name;
  });
  if (order.size() > limit) order.resize(limit);
  std::vector<DestinationHistory> kept;
  kept.reserve(order.size());
  for (const auto& [total, i] : order) kept.push_back(std::move(list[i]));
  list = std::move(kept);
}

std::vector<DestinationHistory> provider_histories(const std::vector<DestinationHistory>& domains) {
  std::map<std::string, DestinationHistory> sums;
  for (const auto& d : domains) {
    if (d.provider.empty()) continue;
    auto& p = sums[d.provider];
    p.name = d.provider;
    for (std::size_t k = 0; k < History::kKinds; ++k)
      for (std::size_t i = 0; i < History::kBuckets; ++i) p.counts[k][i] += d.counts[k][i];
  }
  std::vector<DestinationHistory> out;
  out.reserve(sums.size());
  for (auto& [name, p] : sums) out.push_back(std::move(p));
  return out;
}

nlohmann::json chart_data_json(const Metrics& metrics, std::int64_t now_ms) {
  std::vector<DestinationHistory> domains;
  metrics.for_each_domain([&](const Series& series) {
    DestinationHistory d;
    d.name = series.name();
    if (const Series* provider = series.linked_provider()) d.provider = provider->name();
    series.history().add_to(d.counts, now_ms);
    if (d.total() == 0) return;  // quiet for an hour: adds nothing to a provider or a chart
    domains.push_back(std::move(d));
  });
  auto providers = provider_histories(domains);
  keep_busiest(domains, kChartDomains);
  nlohmann::json out = {{"time", now_ms},
                        {"start", History::window_start_ms(now_ms)},
                        {"bucket_ms", History::kBucketMs},
                        {"providers", nlohmann::json::array()},
                        {"domains", nlohmann::json::array()}};
  for (const auto& p : providers) out["providers"].push_back(counts_json(p, "provider"));
  for (const auto& d : domains) out["domains"].push_back(counts_json(d, "domain"));
  return out;
}

}  // namespace kurier::engine
