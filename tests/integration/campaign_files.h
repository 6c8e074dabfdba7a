// The files and the outcomes of an integration test's campaign: campaign.toml,
// kurier.toml, `kurier send`, `kurier report --format csv` split into fields, and the
// recipients' statuses read from the queue. Test thread only; a file that cannot be
// written throws std::runtime_error.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::test {

// Writes `campaign_toml` for campaign `id`, sent as `from`, with template.eml and
// `recipients` beside it and VERP addresses under `verp_domain`.
void write_campaign_toml(const std::filesystem::path& campaign_toml, const std::string& id, const std::string& from,
                         const std::string& recipients = "recipients.csv",
                         const std::string& verp_domain = "b.sender.test");

// What differs between the kurier.toml files of the `kurier send` tests. The queue is
// always "queue" beside the config.
struct SendConfig {
  SendConfig(std::string dns, std::uint16_t port) : dns_server(std::move(dns)), smtp_port(port) {}

  std::string dns_server;          // [dns] servers = ["..."]
  std::uint16_t smtp_port;         // [smtp] port
  std::string dns_keys;            // more [dns] keys, e.g. "timeout_ms = 300\n"
  std::string smtp_keys;           // more [smtp] keys, e.g. "tls = \"disabled\"\n"
  bool shaping = true;             // [shaping] file = "shaping.toml" (written by the test)
  std::string tables;              // further tables, verbatim: [smtp.timeouts], [engine], ...
  std::string verp_secret = "s";   // [verp] secret
};
std::string send_config(const SendConfig& config);

// Runs `kurier send <root>/campaign.toml --config <root>/kurier.toml --no-progress`,
// with --wait when `wait` (every recipient final, retries included).
RunResult send_campaign(const std::filesystem::path& root, bool wait, std::chrono::seconds timeout);

// Runs `kurier report CAMPAIGN --format csv --config CONFIG`.
RunResult report_csv(const std::filesystem::path& config, const std::string& campaign,
                     std::chrono::seconds timeout = std::chrono::seconds(120));

// A CSV report: its header and its rows, as printed and split at commas (the report
// quotes nothing; empty fields are kept, a trailing one too).
struct CsvRows {
  std::string header;
  std::vector<std::string> lines;
  std::vector<std::vector<std::string>> fields;
};
CsvRows split_csv(const std::string& text);

// Every recipient's status in campaign `id` of an open queue, by address.
std::map<std::string, queue::Status> statuses_by_address(queue::Store& store, queue::CampaignId id);

}  // namespace kurier::test
