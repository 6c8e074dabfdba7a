// The status tables (see status_tables.h). Main thread; a store failure while scanning
// is a StoreError thrown to the command; missing JSON fields show as 0 or "".
#include "engine/cli/status_tables.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/core/text_format.h"
#include "engine/intake/address.h"

namespace kurier::engine {
namespace {

using nlohmann::json;

void add_state(queue::Counts& counts, queue::State state) {
  switch (state) {
    case queue::State::queued: ++counts.queued; break;
    case queue::State::delivered: ++counts.delivered; break;
    case queue::State::deferred: ++counts.deferred; break;
    case queue::State::bounced: ++counts.bounced; break;
    case queue::State::expired: ++counts.expired; break;
    case queue::State::suppressed: ++counts.suppressed; break;
    case queue::State::cancelled: ++counts.cancelled; break;
  }
}

std::string cell_rate(const json& row) {
  double limit = row.value("rate_limit", 0.0);
  if (limit <= 0) return "-";
  return fmt::format("{:.4g}/s", limit);
}

std::string cell_until(std::int64_t until_s, std::int64_t now_s) {
  if (until_s <= now_s) return "-";
  return fmt::format("{} ({}s)", iso_time(until_s * 1000, false).substr(11, 8), until_s - now_s);
}

std::string cell_limit(const json& row) {
  auto limit = row.value("connection_limit", std::int64_t{0});
  return fmt::format("{}/{}", row.value("connections", std::int64_t{0}), limit > 0 ? std::to_string(limit) : "-");
}

void live_table(std::string& out, const json& rows, const char* name_key, std::int64_t now_s) {
  out += fmt::format("{:<28} {:<10} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>9}  {}\n", name_key, "state",
                     "queued", "flight", "conns", "rate", "delivered", "deferred", "bounced", "expired", "throttled",
                     "suspended until");
  for (const auto& r : rows) {
    out += fmt::format("{:<28} {:<10} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>9}  {}\n",
                       r.value(name_key, ""), r.value("state", ""), r.value("queued", std::int64_t{0}),
                       r.value("in_flight", std::int64_t{0}), cell_limit(r), cell_rate(r),
                       r.value("delivered", std::uint64_t{0}), r.value("deferred", std::uint64_t{0}),
                       r.value("bounced", std::uint64_t{0}), r.value("expired", std::uint64_t{0}),
                       r.value("throttled", std::uint64_t{0}), cell_until(r.value("suspended_until", std::int64_t{0}), now_s));
  }
}

}  // namespace

std::map<std::string, DomainRow> per_domain(queue::Store& store, queue::CampaignId campaign) {
  std::map<std::string, DomainRow> rows;
  store.for_each_recipient(campaign, [&](const queue::Recipient& r) {
    auto& row = rows[domain_of(r.address)];
    add_state(row.counts, r.status.state);
    if (r.status.state != queue::State::delivered && !r.status.reason.empty()) ++row.reasons[r.status.reason];
    return true;
  });
  return rows;
}

void print_domain_table(std::FILE* out, const std::map<std::string, DomainRow>& rows) {
  fmt::print(out, "{:<28} {:>7} {:>9} {:>8} {:>7} {:>7} {:>10} {:>6}  {}\n", "domain", "total", "delivered",
             "deferred", "bounced", "expired", "suppressed", "queued", "reasons");
  queue::Counts total;
  for (const auto& [domain, row] : rows) {
    const auto& c = row.counts;
    std::string reasons;
    for (const auto& [reason, n] : row.reasons) reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n);
    fmt::print(out, "{:<28} {:>7} {:>9} {:>8} {:>7} {:>7} {:>10} {:>6}  {}\n", domain, c.total(), c.delivered,
               c.deferred, c.bounced, c.expired, c.suppressed, c.queued, reasons);
    total.queued += c.queued;
    total.delivered += c.delivered;
    total.deferred += c.deferred;
    total.bounced += c.bounced;
    total.expired += c.expired;
    total.suppressed += c.suppressed;
  }
  fmt::print(out, "{:<28} {:>7} {:>9} {:>8} {:>7} {:>7} {:>10} {:>6}\n", "TOTAL", total.total(), total.delivered,
             total.deferred, total.bounced, total.expired, total.suppressed, total.queued);
}

std::string format_live_status(const json& status) {
  std::string out;
  const std::int64_t now_s = status.value("time", std::int64_t{0}) / 1000;
  out += fmt::format("kurier serve: live status at {}\n\n", iso_time(status.value("time", std::int64_t{0}), false));
  live_table(out, status.value("domains", json::array()), "domain", now_s);
  const auto providers = status.value("providers", json::array());
  if (!providers.empty()) {
    out += "\n";
    live_table(out, providers, "provider", now_s);
  }
  out += fmt::format("\n{:<28} {:>7} {:>7} {:>6} {:>9} {:>8} {:>8} {:>7} {:>10}\n", "campaign", "total", "queued",
                     "flight", "delivered", "deferred", "bounced", "expired", "suppressed");
  std::string held;
  for (const auto& c : status.value("campaigns", json::array())) {
    out += fmt::format("{:<28} {:>7} {:>7} {:>6} {:>9} {:>8} {:>8} {:>7} {:>10}\n", c.value("campaign", ""),
                       c.value("total", 0), c.value("queued", 0), c.value("in_flight", 0), c.value("delivered", 0),
                       c.value("deferred", 0), c.value("bounced", 0), c.value("expired", 0), c.value("suppressed", 0));
    if (const auto control = c.value("control", json::object()); !control.empty())
      held += fmt::format("  {} {} by {} since {}: {}\n", c.value("campaign", ""), control.value("state", ""),
                          control.value("by", ""), iso_time(control.value("since", std::int64_t{0}), false),
                          control.value("reason", ""));
  }
  if (!held.empty()) out += "\nheld campaigns:\n" + held;
  std::string suspended;
  for (const auto& s : status.value("suspensions", json::array()))
    suspended += fmt::format("  {} until {}: {}\n", s.value("scope", ""),
                             iso_time(s.value("until", std::int64_t{0}) * 1000, false), s.value("reason", ""));
  if (!suspended.empty()) out += "\nsuspended by the operator:\n" + suspended;
  return out;
}

}  // namespace kurier::engine
