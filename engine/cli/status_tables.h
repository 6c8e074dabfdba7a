// The text tables of `kurier status`: the per-domain table of a campaign read from the
// queue (also printed by send and report), and the per-domain/provider table of a
// running daemon's /api/status document (also shown by top). Main thread; reads only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "queue/store.h"

namespace kurier::engine {

struct DomainRow {
  queue::Counts counts;
  std::map<std::string, std::uint64_t> reasons;  // non-delivered recipients by reason
};

// Counts of `campaign` per recipient domain (one scan of the campaign).
std::map<std::string, DomainRow> per_domain(queue::Store& store, queue::CampaignId campaign);
// One line per domain plus a TOTAL line.
void print_domain_table(std::FILE* out, const std::map<std::string, DomainRow>& rows);

// The per-domain and per-provider table of a /api/status document (engine/ops/api.h).
std::string format_live_status(const nlohmann::json& status);

}  // namespace kurier::engine
