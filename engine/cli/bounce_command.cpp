// `kurier bounce classify`: every FILE is checked readable before anything is printed,
// so bad input gives exit 2 and no partial output. Main thread.
#include "engine/cli/bounce_command.h"

#include <iostream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include "bounce/bounce.h"
#include "engine/core/input_error.h"
#include "engine/bounces/mail_files.h"
#include "engine/core/verp.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {
namespace {

namespace fs = std::filesystem;

struct ClassifySettings {
  std::optional<Verp> verp;
  std::optional<bounce::Rules> rules;
};

ClassifySettings read_settings(const fs::path& config) {
  toml::table root;
  try {
    root = toml::parse_file(config.string());
  } catch (const toml::parse_error& e) {
    throw InputError(config.string(), e.source().begin.line, "", std::string(e.description()));
  }
  ClassifySettings settings;
  if (const toml::node* node = root.at_path("verp.secret").node()) {
    const auto secret = node->value_exact<std::string>();
    if (!secret || secret->empty())
      throw InputError(config.string(), node->source().begin.line, "verp.secret", "must be a non-empty string");
    settings.verp.emplace(*secret);
  }
  if (const toml::node* node = root.at_path("bounce.rules").node()) {
    const auto file = node->value_exact<std::string>();
    if (!file || file->empty())
      throw InputError(config.string(), node->source().begin.line, "bounce.rules", "must be a file name");
    fs::path path(*file);
    if (path.is_relative()) path = config.parent_path() / path;
    try {
      settings.rules.emplace(bounce::Rules::load(path));
    } catch (const bounce::RulesError& e) {
      throw InputError(e.file(), e.line(), e.field(), e.message());
    }
  }
  return settings;
}

nlohmann::ordered_json verp_of(const bounce::Message& message, const std::optional<Verp>& verp) {
  if (!verp) return nullptr;
  for (const auto& candidate : message.verp_candidates) {
    if (const auto ids = verp->decode_address(candidate))
      return {{"campaign", std::to_string(ids->campaign)}, {"recipient", std::to_string(ids->recipient)}};
  }
  return nullptr;
}

}  // namespace

int bounce_classify_command(const BounceClassifyOptions& options, std::ostream& out) {
  ClassifySettings settings;
  if (options.config) settings = read_settings(*options.config);
  const bounce::Rules& rules = settings.rules ? *settings.rules : bounce::Rules::builtin();

  std::vector<std::string> contents;
  contents.reserve(options.files.size());
  for (const auto& file : options.files) contents.push_back(read_message_file(file));

  for (std::size_t i = 0; i < options.files.size(); ++i) {
    const bounce::Message message = bounce::parse(contents[i], rules);
    const nlohmann::ordered_json verp = verp_of(message, settings.verp);
    auto line = [&](const bounce::RecipientReport* r) {
      nlohmann::ordered_json j = {{"file", options.files[i].string()},
                          {"kind", std::string(bounce::to_string(message.kind))},
                          {"recipient", r != nullptr ? r->recipient : std::string()},
                          {"status", r != nullptr ? r->status : std::string()},
                          {"reply", r != nullptr ? r->reply : std::string()},
                          {"reason", r != nullptr ? r->verdict.reason : std::string()},
                          {"category", r != nullptr ? r->verdict.category : std::string()},
                          {"verp", verp}};
      // Replacement characters instead of an exception for bytes that are not UTF-8.
      out << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    };
    if (message.recipients.empty()) line(nullptr);
    for (const auto& r : message.recipients) line(&r);
  }
  out.flush();
  return 0;
}

CliCommand add_bounce_command(CLI::App& app) {
  auto* bounce = app.add_subcommand("bounce", "inbound bounces, complaints and auto-replies");
  bounce->require_subcommand(1);
  auto [classify, state] = add_subcommand_with_state<ConfigState<BounceClassifyOptions>>(
      *bounce, "classify", "one JSON line per bounced recipient (or per message) of each FILE");
  classify->add_option("files", state->options.files, "message files (.eml)")->required();
  const CliCommand classify_command = config_command(
      classify, state, [](auto& s) { return bounce_classify_command(s.options, std::cout); },
      "kurier.toml ([verp] secret, [bounce] rules)");
  std::vector<CliCommand> commands = {classify_command, add_bounce_ingest_command(*bounce)};
  return {bounce, [commands] { return run_chosen(commands); }};
}

}  // namespace kurier::engine
