// The kurier command line (DESIGN.md "CLI"). Parses arguments with CLI11 and runs
// one command; exit 0 success, 1 runtime failure, 2 bad input.
#include <iostream>

#include <CLI/CLI.hpp>

#include "engine/commands.h"
#include "engine/input_error.h"
#include "queue/store.h"

int main(int argc, char** argv) {
  using namespace kurier::engine;
  CLI::App app{"kurier: bulk mail straight to the recipients' MX hosts, every reply captured"};
  app.require_subcommand(1);

  SendOptions send;
  std::string send_config;
  auto* send_cmd = app.add_subcommand("send", "queue a campaign and deliver it until every recipient is final or deferred");
  send_cmd->add_option("campaign", send.campaign, "campaign.toml")->required();
  send_cmd->add_option("--config", send_config, "kurier.toml (default: ./kurier.toml if present)");
  send_cmd->add_flag("--wait", send.wait, "keep retrying deferred recipients until every one is final");
  bool no_progress = false;
  send_cmd->add_flag("--no-progress", no_progress, "no progress line on a terminal");

  ReportOptions report;
  std::string report_config;
  auto* report_cmd = app.add_subcommand("report", "per-recipient outcome and attempt log of a campaign");
  report_cmd->add_option("campaign", report.campaign, "campaign id")->required();
  report_cmd->add_option("--format", report.format, "text, json or csv")->check(CLI::IsMember({"text", "json", "csv"}));
  report_cmd->add_option("--config", report_config, "kurier.toml");

  StatusOptions status;
  std::string status_config, status_campaign;
  auto* status_cmd = app.add_subcommand("status", "per campaign and domain: queued, delivered, deferred, bounced");
  status_cmd->add_option("--campaign", status_campaign, "only this campaign");
  status_cmd->add_flag("--json", status.json, "JSON output");
  status_cmd->add_option("--config", status_config, "kurier.toml");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto config_of = [](const std::string& s) -> std::optional<std::filesystem::path> {
    if (s.empty()) return std::nullopt;
    return std::filesystem::path(s);
  };
  try {
    if (*send_cmd) {
      send.config = config_of(send_config);
      send.progress = !no_progress;
      return send_command(send);
    }
    if (*report_cmd) {
      report.config = config_of(report_config);
      return report_command(report);
    }
    if (*status_cmd) {
      status.config = config_of(status_config);
      if (!status_campaign.empty()) status.campaign = status_campaign;
      return status_command(status);
    }
  } catch (const InputError& e) {
    std::cerr << "kurier: " << e.what() << "\n";
    return 2;
  } catch (const kurier::queue::StoreError& e) {
    std::cerr << "kurier: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "kurier: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
