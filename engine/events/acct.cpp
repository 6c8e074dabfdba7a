// Accounting CSV rows from a recipient's attempt and event logs (contract in acct.h).
// Pure; any thread.
#include "engine/events/acct.h"

#include <ctime>
#include <utility>

#include <fmt/format.h>

#include "engine/core/text_format.h"

namespace kurier::engine {
namespace {

constexpr std::string_view kColumns =
    "type,timeLogged,timeQueued,orig,rcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,dlvSourceIp,"
    "dlvDestinationIp,dlvSize,jobId,attempt,dlvTlsProtocol,reason";

// PowerMTA's time format: "2026-12-07 20:41:00+0000".
std::string acct_time(std::int64_t ms) {
  if (ms <= 0) return "";
  const auto t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S+0000", &tm);
  return buf;
}

// The row's type from the attempt's place: the last attempt of a final recipient
// takes its state; earlier ones (and a pending recipient's) their classification.
std::string_view attempt_type(const queue::Attempt& a, bool last, queue::State state) {
  if (last) {
    if (state == queue::State::delivered) return "d";
    if (state == queue::State::bounced || state == queue::State::expired) return "b";
  }
  if (a.classification.starts_with("delivered")) return "d";
  if (a.classification.starts_with("bounced")) return "b";
  return "t";
}

std::string_view action_of(std::string_view type) {
  if (type == "d") return "relayed";
  if (type == "b" || type == "rb") return "failed";
  return "delayed";
}

// "5.1.1" from the enhanced code, else the class of the reply ("4.0.0"), else none.
std::string dsn_status(int code, const std::string& enhanced) {
  if (!enhanced.empty()) return enhanced;
  if (code >= 200 && code < 600) return fmt::format("{}.0.0", code / 100);
  return "";
}

std::string row(std::initializer_list<std::string> fields) {
  std::string out;
  bool first = true;
  for (const auto& f : fields) {
    if (!first) out += ',';
    out += csv_field(f);
    first = false;
  }
  return out;
}

}  // namespace

std::string acct_header() { return std::string(kColumns); }

std::string_view acct_bounce_category(std::string_view reason) {
  static const std::pair<std::string_view, std::string_view> kMap[] = {
      {"userunknown", "bad-mailbox"},      {"hostunknown", "bad-domain"},       {"notaccept", "bad-domain"},
      {"mailboxfull", "quota-issues"},     {"exceedlimit", "message-expired"},  {"expired", "message-expired"},
      {"suspend", "inactive-mailbox"},     {"blocked", "policy-related"},       {"rejected", "policy-related"},
      {"policyviolation", "policy-related"}, {"spamdetected", "spam-related"},  {"filtered", "content-related"},
      {"contenterror", "content-related"}, {"toomanyconn", "routing-errors"},   {"networkerror", "routing-errors"},
      {"systemerror", "routing-errors"},   {"securityerror", "policy-related"}, {"authfailure", "policy-related"},
      {"mesgtoobig", "message-too-large"}, {"speeding", "policy-related"},      {"vacation", "other"}};
  for (const auto& [sisimai, pmta] : kMap)
    if (sisimai == reason) return pmta;
  return reason.empty() ? "" : "other";
}

std::vector<std::string> acct_rows(const queue::Recipient& r, const std::vector<queue::Attempt>& attempts,
                                   const std::vector<queue::Event>& events, const AcctCampaign& campaign,
                                   const std::string& sender) {
  std::vector<std::string> rows;
  const std::string queued = acct_time(campaign.queued_ms);
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const auto& a = attempts[i];
    const bool last = i + 1 == attempts.size();
    const std::string_view type = attempt_type(a, last, r.status.state);
    const std::string reason = last ? r.status.reason : "";
    const std::string diag = a.code ? fmt::format("smtp;{} {}", a.code, a.text) : "local;" + a.text;
    const std::string mta = a.mx_host.empty() ? "" : a.mx_host + (a.mx_address.empty() ? "" : " (" + a.mx_address + ")");
    rows.push_back(row({std::string(type), acct_time(a.time_ms), queued, sender, r.address, std::string(action_of(type)),
                        dsn_status(a.code, a.enhanced), diag, mta,
                        type == "d" ? "" : std::string(acct_bounce_category(reason)), "", a.mx_address, "",
                        campaign.name, std::to_string(i + 1), a.tls ? a.tls_detail : "", reason}));
  }
  for (const auto& e : events) {
    std::string_view type = "rs";
    if (e.kind == queue::EventKind::late_bounce) type = "rb";
    if (e.kind == queue::EventKind::complaint || e.kind == queue::EventKind::unsubscribe) type = "f";
    rows.push_back(row({std::string(type), acct_time(e.time_ms), queued, sender, r.address,
                        std::string(action_of(type)), "", e.detail, "", std::string(acct_bounce_category(e.reason)),
                        "", "", "", campaign.name, "", "", e.reason}));
  }
  return rows;
}

}  // namespace kurier::engine
