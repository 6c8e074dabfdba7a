// kurier submit CAMPAIGN: hands a campaign to the running daemon (POST /api/campaigns,
// engine/ops/api.h), whose intake checks it and answers with the counts. Main thread;
// exit 2 for bad input the daemon reports (400), 1 when no daemon answers or it fails.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"
#include "engine/core/config.h"
#include "engine/intake/campaign.h"
#include "engine/ops/auth_token.h"
#include "engine/ops/http_server.h"

namespace kurier::engine {
namespace {

using nlohmann::json;

// How long the daemon's intake of a campaign may take (a large list with DNS hygiene).
constexpr std::chrono::minutes kSubmitTimeout{10};

struct SubmitOptions {
  std::filesystem::path campaign;
  std::optional<std::filesystem::path> config;
};

// The daemon's answer as the exit status and the lines people read.
int report_answer(const HttpResponse& response) {
  auto answer = json::parse(response.body, nullptr, false);
  if (response.status == 400) {
    std::fprintf(stderr, "kurier: %s\n", answer.is_object() ? answer.value("error", response.body).c_str() : response.body.c_str());
    return 2;
  }
  if (response.status != 200 || !answer.is_object()) {
    std::fprintf(stderr, "kurier: the daemon answered %d: %s\n", response.status,
                 answer.is_object() ? answer.value("error", "").c_str() : response.body.c_str());
    return 1;
  }
  if (answer.value("resumed", false)) {
    fmt::print("kurier: campaign {} is already queued ({} recipients)\n", answer.value("campaign", ""),
               answer.value("rows", 0));
  } else {
    fmt::print("kurier: campaign {} submitted: {} recipients, {} queued, {} suppressed\n", answer.value("campaign", ""),
               answer.value("rows", 0), answer.value("queued", 0), answer.value("suppressed", 0));
  }
  return 0;
}

int submit_command(const SubmitOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  // Bad campaign.toml is reported here; the CSV and template are checked by the
  // daemon's intake, which reports file, line and field the same way.
  CampaignSpec spec = load_campaign(options.campaign);
  std::string token = read_token(config);
  if (token.empty()) {
    std::fprintf(stderr, "kurier: no HTTP token: set [http] token or start `kurier serve` (it writes %s)\n",
                 token_file(config).c_str());
    return 1;
  }
  const json body = {{"campaign", std::filesystem::absolute(spec.file).lexically_normal().string()}};
  HttpResponse response;
  try {
    response = http_call(config.http.listen, "POST", "/api/campaigns", body.dump(), token, kSubmitTimeout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kurier: no daemon answers at %s (%s): start `kurier serve`\n", config.http.listen.c_str(),
                 e.what());
    return 1;
  }
  return report_answer(response);
}

}  // namespace

CliCommand add_submit_command(CLI::App& app) {
  auto [cmd, state] = add_subcommand_with_state<ConfigState<SubmitOptions>>(
      app, "submit", "hand a campaign to the running daemon (kurier serve)");
  cmd->add_option("campaign", state->options.campaign, "campaign.toml")->required();
  return config_command(cmd, state, [](auto& s) { return submit_command(s.options); });
}

}  // namespace kurier::engine
