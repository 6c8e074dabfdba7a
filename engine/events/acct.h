// `kurier report CAMPAIGN --format acct`: the accounting CSV PowerMTA users already
// parse, made from the queue's attempt and event logs (so it is complete even after
// the event log rotated). One row per attempt, then one per later event:
//   type  d delivered, b bounced (also expired: the last attempt), t transient
//         (deferred), rb remote bounce (late DSN), f feedback (complaint, unsubscribe),
//         rs remote status (auto-reply, delay DSN)
//   timeLogged, timeQueued  "2026-12-07 20:41:00+0000"
//   dsnAction relayed/failed/delayed; dsnStatus "5.1.1 (bad destination mailbox)" ...
// Pure functions; any thread; they do not fail.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "queue/store.h"

namespace kurier::engine {

// The header line (no line break).
std::string acct_header();

struct AcctCampaign {
  std::string name;            // jobId
  std::int64_t queued_ms = 0;  // timeQueued
};

// The rows (each without its line break) of one recipient: its attempts, oldest
// first, then its later events. `sender` is its VERP return path ("" if unknown).
std::vector<std::string> acct_rows(const queue::Recipient& recipient, const std::vector<queue::Attempt>& attempts,
                                   const std::vector<queue::Event>& events, const AcctCampaign& campaign,
                                   const std::string& sender);

// PowerMTA's bounce category for a Sisimai reason ("userunknown" -> "bad-mailbox").
std::string_view acct_bounce_category(std::string_view reason);

}  // namespace kurier::engine
