// kurier pause | resume | cancel | retry | suspend | unsuspend | purge: the operator's
// hands on a running sender (docs/DESIGN.md "Operating a running sender"). Each is a
// queue operation (engine/ops/operations.h), run on the queue or by the daemon holding
// it. Main thread; exit 0 done, 1 refused (e.g. resume of a running campaign), 2 bad input.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {
namespace {

struct ControlOptions {
  std::string campaign, domain, provider, reason, period;
  std::optional<std::filesystem::path> config;
};

using State = ConfigState<ControlOptions>;

int run(const std::string& op, const ControlOptions& o) {
  Config config = load_config(o.config);
  log::set_level(config.log.level);
  nlohmann::json request = {{"op", op}};
  for (auto [key, value] : {std::pair{"campaign", &o.campaign}, std::pair{"domain", &o.domain},
                            std::pair{"provider", &o.provider}, std::pair{"reason", &o.reason},
                            std::pair{"for", &o.period}})
    if (!value->empty()) request[key] = *value;
  return run_operation(config, request);
}

CliCommand add(CLI::App& app, const std::string& op, const std::string& help,
               const std::function<void(CLI::App&, State&)>& options) {
  auto [cmd, state] = add_subcommand_with_state<State>(app, op, help);
  options(*cmd, *state);
  return config_command(cmd, state, [op](State& s) { return run(op, s.options); });
}

void campaign_arg(CLI::App& cmd, State& s) { cmd.add_option("campaign", s.options.campaign, "campaign id")->required(); }
void reason_opt(CLI::App& cmd, State& s) { cmd.add_option("--reason", s.options.reason, "why (logged)"); }
void scope_opts(CLI::App& cmd, State& s, bool campaign, bool provider) {
  if (campaign) cmd.add_option("--campaign", s.options.campaign, "a campaign id");
  cmd.add_option("--domain", s.options.domain, "a recipient domain");
  if (provider) cmd.add_option("--provider", s.options.provider, "a [provider.NAME] of the shaping rules");
}

}  // namespace

std::vector<CliCommand> add_control_commands(CLI::App& app) {
  return {
      add(app, "pause", "no new transactions for a campaign (those in flight finish)",
          [](CLI::App& c, State& s) { campaign_arg(c, s), reason_opt(c, s); }),
      add(app, "resume", "resume a paused campaign", [](CLI::App& c, State& s) { campaign_arg(c, s); }),
      add(app, "cancel", "end every recipient of a campaign not yet sent as `cancelled`",
          [](CLI::App& c, State& s) { campaign_arg(c, s), reason_opt(c, s); }),
      add(app, "retry", "make waiting (deferred) recipients due now",
          [](CLI::App& c, State& s) { scope_opts(c, s, true, true); }),
      add(app, "suspend", "no deliveries to a domain or provider for a while",
          [](CLI::App& c, State& s) {
            scope_opts(c, s, false, true);
            c.add_option("--for", s.options.period, "how long, e.g. 30m, 2h (default: until unsuspend)");
            reason_opt(c, s);
          }),
      add(app, "unsuspend", "lift a suspension; what it held back is due now",
          [](CLI::App& c, State& s) { scope_opts(c, s, false, true); }),
      add(app, "purge", "give up on what is queued for a domain or campaign (bounced, reason admin)",
          [](CLI::App& c, State& s) {
            scope_opts(c, s, true, false);
            c.add_option("--reason", s.options.reason, "why (required, logged)")->required();
          }),
  };
}

}  // namespace kurier::engine
