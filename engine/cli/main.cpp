// The kurier command line (DESIGN.md "CLI"). Parses arguments with CLI11 and runs
// one command; exit 0 success, 1 runtime failure, 2 bad input.
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include "engine/cli/bounce_command.h"
#include "engine/cli/check_command.h"
#include "engine/cli/commands.h"
#include "engine/cli/dkim_command.h"
#include "engine/cli/ingest_command.h"
#include "engine/core/input_error.h"
#include "engine/ops/serve_command.h"
#include "engine/cli/suppression_command.h"
#include "queue/store.h"

int main(int argc, char** argv) {
  // A peer closing mid-write must surface as an error code on that session, never kill
  // the process (Asio's sockets already use MSG_NOSIGNAL; this covers every other write).
  std::signal(SIGPIPE, SIG_IGN);
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

  ServeOptions serve;
  std::string serve_config;
  auto* serve_cmd = app.add_subcommand("serve", "daemon: continuous delivery, ops HTTP (/metrics, /api/status, dashboard)");
  serve_cmd->add_option("--config", serve_config, "kurier.toml");

  SubmitOptions submit;
  std::string submit_config;
  auto* submit_cmd = app.add_subcommand("submit", "hand a campaign to the running daemon (kurier serve)");
  submit_cmd->add_option("campaign", submit.campaign, "campaign.toml")->required();
  submit_cmd->add_option("--config", submit_config, "kurier.toml");

  TopOptions top;
  std::string top_config;
  auto* top_cmd = app.add_subcommand("top", "the daemon's live per-domain table, refreshed every second (q quits)");
  top_cmd->add_option("--config", top_config, "kurier.toml");
  top_cmd->add_option("--iterations", top.iterations, "refresh this many times, then exit (0: until q/Ctrl-C)");

  CheckOptions check;
  std::string check_config, check_file;
  bool check_no_dns = false;
  auto* check_cmd = app.add_subcommand("check", "list-hygiene verdicts for addresses (nothing is queued)");
  check_cmd->add_option("addresses", check.addresses, "addresses to judge");
  check_cmd->add_option("--file", check_file, "one address a line, or a CSV file with an \"email\" column");
  check_cmd->add_flag("--json", check.json, "one JSON object a line");
  check_cmd->add_flag("--no-dns", check_no_dns, "no DNS lookups (no no_mail_host verdicts)");
  check_cmd->add_option("--config", check_config, "kurier.toml");

  auto* dkim_cmd = app.add_subcommand("dkim", "DKIM keys: keygen, check");
  dkim_cmd->require_subcommand(1);
  DkimKeygenOptions keygen;
  std::string keygen_out;
  auto* keygen_cmd = dkim_cmd->add_subcommand("keygen", "write a private key (mode 0600) and print the DNS TXT record");
  keygen_cmd->add_option("--domain", keygen.domain, "signing domain (d=)")->required();
  keygen_cmd->add_option("--selector", keygen.selector, "selector (s=)")->required();
  keygen_cmd->add_option("--algorithm", keygen.algorithm, "rsa (2048 bits, default) or ed25519");
  keygen_cmd->add_option("--out", keygen_out, "private key file (default: SELECTOR.private)");
  DkimCheckOptions dkim_check;
  std::string dkim_check_dns, dkim_check_config;
  auto* dkim_check_cmd = dkim_cmd->add_subcommand("check", "compare the published TXT record with a key: exit 0 match, 1 mismatch, 2 missing");
  dkim_check_cmd->add_option("--domain", dkim_check.domain, "signing domain (d=)")->required();
  dkim_check_cmd->add_option("--selector", dkim_check.selector, "selector (s=)")->required();
  dkim_check_cmd->add_option("--key", dkim_check.key, "private key file")->required();
  dkim_check_cmd->add_option("--dns", dkim_check_dns, "DNS server host:port (default: [dns] servers, else the system's)");
  dkim_check_cmd->add_option("--config", dkim_check_config, "kurier.toml");

  auto* bounce_cmd = app.add_subcommand("bounce", "inbound bounces, complaints and auto-replies");
  bounce_cmd->require_subcommand(1);
  BounceClassifyOptions bounce_classify;
  std::string bounce_classify_config;
  auto* bounce_classify_cmd =
      bounce_cmd->add_subcommand("classify", "one JSON line per bounced recipient (or per message) of each FILE");
  bounce_classify_cmd->add_option("files", bounce_classify.files, "message files (.eml)")->required();
  bounce_classify_cmd->add_option("--config", bounce_classify_config, "kurier.toml ([verp] secret, [bounce] rules)");
  IngestOptions bounce_ingest;
  std::string bounce_ingest_config;
  auto* bounce_ingest_cmd =
      bounce_cmd->add_subcommand("ingest", "parse .eml files, mbox files or Maildirs and apply them to the queue");
  bounce_ingest_cmd->add_option("paths", bounce_ingest.paths, ".eml file, mbox file or Maildir")->required();
  bounce_ingest_cmd->add_flag("--json", bounce_ingest.json, "the summary as JSON");
  bounce_ingest_cmd->add_option("--config", bounce_ingest_config, "kurier.toml");

  auto* suppress_cmd = app.add_subcommand("suppress", "the suppression list: import, export, list, add, remove");
  suppress_cmd->require_subcommand(1);
  SuppressOptions suppress;
  std::string suppress_config;
  auto* suppress_import_cmd = suppress_cmd->add_subcommand("import", "add the addresses of a CSV file (address,reason,time)");
  suppress_import_cmd->add_option("file", suppress.file, "CSV with a header row and an address (or email) column")->required();
  auto* suppress_export_cmd = suppress_cmd->add_subcommand("export", "print the list as CSV (address,reason,time)");
  suppress_export_cmd->add_option("--format", suppress.format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  auto* suppress_list_cmd = suppress_cmd->add_subcommand("list", "print the list as a table");
  auto* suppress_add_cmd = suppress_cmd->add_subcommand("add", "suppress one address");
  suppress_add_cmd->add_option("address", suppress.address, "address")->required();
  suppress_add_cmd->add_option("--reason", suppress.reason, "reason (default: manual)");
  auto* suppress_remove_cmd = suppress_cmd->add_subcommand("remove", "take one address off the list");
  suppress_remove_cmd->add_option("address", suppress.address, "address")->required();
  for (auto* sub : {suppress_import_cmd, suppress_export_cmd, suppress_list_cmd, suppress_add_cmd, suppress_remove_cmd})
    sub->add_option("--config", suppress_config, "kurier.toml");

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
    if (*check_cmd) {
      check.config = config_of(check_config);
      if (!check_file.empty()) check.file = std::filesystem::path(check_file);
      check.dns = !check_no_dns;
      return check_command(check);
    }
    if (*status_cmd) {
      status.config = config_of(status_config);
      if (!status_campaign.empty()) status.campaign = status_campaign;
      return status_command(status);
    }
    if (*serve_cmd) {
      serve.config = config_of(serve_config);
      return serve_command(serve);
    }
    if (*submit_cmd) {
      submit.config = config_of(submit_config);
      return submit_command(submit);
    }
    if (*top_cmd) {
      top.config = config_of(top_config);
      return top_command(top);
    }
    if (*bounce_classify_cmd) {
      bounce_classify.config = config_of(bounce_classify_config);
      return bounce_classify_command(bounce_classify, std::cout);
    }
    if (*bounce_ingest_cmd) {
      bounce_ingest.config = config_of(bounce_ingest_config);
      return bounce_ingest_command(bounce_ingest);
    }
    if (*suppress_cmd) {
      suppress.config = config_of(suppress_config);
      for (auto* sub : {suppress_import_cmd, suppress_export_cmd, suppress_list_cmd, suppress_add_cmd, suppress_remove_cmd})
        if (*sub) suppress.action = sub->get_name();
      return suppress_command(suppress);
    }
    if (*keygen_cmd) {
      if (!keygen_out.empty()) keygen.out = std::filesystem::path(keygen_out);
      return dkim_keygen_command(keygen);
    }
    if (*dkim_check_cmd) {
      if (!dkim_check_dns.empty()) dkim_check.dns = dkim_check_dns;
      dkim_check.config = config_of(dkim_check_config);
      return dkim_check_command(dkim_check);
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
