// campaign.toml and kurier.toml for the `kurier send` tests, and their CSV reports
// split into fields. Test thread only; write_file throws std::runtime_error.
#include "tests/integration/campaign_files.h"

#include <sstream>

namespace kurier::test {

void write_campaign_toml(const std::filesystem::path& campaign_toml, const std::string& id, const std::string& from,
                         const std::string& recipients, const std::string& verp_domain) {
  write_file(campaign_toml, "id = \"" + id + "\"\nfrom = \"" + from + "\"\ntemplate = \"template.eml\"\n"
                            "recipients = \"" + recipients + "\"\n[verp]\ndomain = \"" + verp_domain + "\"\n");
}

std::string send_config(const SendConfig& config) {
  return "[queue]\npath = \"queue\"\n"
         "[dns]\nservers = [\"" + config.dns_server + "\"]\n" + config.dns_keys +
         "[smtp]\nport = " + std::to_string(config.smtp_port) + "\n" + config.smtp_keys +
         (config.shaping ? "[shaping]\nfile = \"shaping.toml\"\n" : "") +
         "[verp]\nsecret = \"" + config.verp_secret + "\"\n" + config.tables;
}

RunResult send_campaign(const std::filesystem::path& root, bool wait, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {binary("kurier").string(), "send", (root / "campaign.toml").string(),
                                   "--config", (root / "kurier.toml").string(), "--no-progress"};
  if (wait) argv.push_back("--wait");
  return run(argv, timeout);
}

RunResult report_csv(const std::filesystem::path& config, const std::string& campaign, std::chrono::seconds timeout) {
  return run({binary("kurier").string(), "report", campaign, "--format", "csv", "--config", config.string()}, timeout);
}

CsvRows split_csv(const std::string& text) {
  CsvRows rows;
  std::istringstream lines(text);
  std::getline(lines, rows.header);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (std::size_t comma; (comma = line.find(',', start)) != std::string::npos; start = comma + 1)
      fields.push_back(line.substr(start, comma - start));
    if (start < line.size() || !fields.empty()) fields.push_back(line.substr(start));
    rows.lines.push_back(line);
    rows.fields.push_back(std::move(fields));
  }
  return rows;
}

std::map<std::string, queue::Status> statuses_by_address(queue::Store& store, queue::CampaignId id) {
  std::map<std::string, queue::Status> statuses;
  store.for_each_recipient(id, [&](const queue::Recipient& r) {
    statuses[r.address] = r.status;
    return true;
  });
  return statuses;
}

}  // namespace kurier::test
