// kurier check: reads the addresses (arguments, a list or a CSV file), looks up their
// domains once each, and prints one verdict line per address. Main thread; the
// file is streamed twice (domains first when DNS is on): memory grows with the
// distinct domains and addresses, not with the file's other columns.
#include "engine/cli/check_command.h"

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <CLI/CLI.hpp>

#include "common/log.h"
#include "common/text.h"
#include "engine/core/config.h"
#include "engine/intake/csv.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/intake/hygiene/hygiene_dns.h"
#include "engine/core/input_error.h"
#include "queue/store.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {
namespace {
namespace fs = std::filesystem;

using AddressFn = std::function<void(const std::string& address)>;

// Calls fn for every address of the file, in order. Throws InputError.
void for_each_address_in_file(const fs::path& path, const AddressFn& fn) {
  const std::string name = path.string();
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw InputError(name, 0, "", "cannot read file");
  std::string first;
  std::getline(probe, first);
  if (first.starts_with("\xEF\xBB\xBF")) first.erase(0, 3);  // UTF-8 BOM
  const bool csv = first.find(',') != std::string::npos || text::iequals(text::trim(first), "email");
  probe.close();

  std::ifstream in(path, std::ios::binary);
  if (!csv) {
    std::string line;
    bool at_start = true;
    while (std::getline(in, line)) {
      if (at_start && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
      at_start = false;
      const std::string address(text::trim(line));
      if (address.empty() || address.front() == '#') continue;
      fn(address);
    }
    return;
  }
  CsvReader reader(in, name);
  std::vector<std::string> row;
  if (!reader.next(row)) throw InputError(name, 1, "", "no header row");
  const std::size_t columns = row.size();
  const std::optional<std::size_t> email = address_column(row, reader);
  while (reader.next(row)) {
    if (row.size() != columns)
      throw InputError(name, reader.line(), "",
                       "expected " + std::to_string(columns) + " columns, found " + std::to_string(row.size()));
    fn(std::string(text::trim(row[*email])));
  }
}

// The queue's suppression list, when it can be read now.
std::unique_ptr<queue::Store> open_suppression_store(const Config& config) {
  if (!fs::exists(config.queue.path)) return nullptr;
  try {
    return open_queue_for_reading(config);
  } catch (const queue::StoreError& e) {
    fmt::print(stderr, "kurier: note: suppression list not checked: the queue {} cannot be opened now "
               "(a running kurier holds it?): {}\n", config.queue.path.string(), e.what());
    return nullptr;
  }
}

}  // namespace

int check_command(const CheckOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  if (options.addresses.empty() && !options.file)
    throw InputError("kurier check", 0, "", "give addresses or --file FILE");
  const Hygiene rules(config.hygiene);

  const std::unique_ptr<MailHostLookup> dns = options.dns ? make_no_mail_host_lookup(rules, config) : nullptr;
  std::unique_ptr<queue::Store> store = open_suppression_store(config);
  Screening::SuppressionLookup suppressed;
  if (store)
    suppressed = [&store](const std::string& lower_address) -> std::optional<std::string> {
      if (auto entry = store->suppression(lower_address)) return entry->reason;
      return std::nullopt;
    };
  Screening screening(rules, dns.get(), suppressed);

  auto for_each_address = [&](const AddressFn& fn) {
    if (options.file) for_each_address_in_file(*options.file, fn);
    for (const auto& a : options.addresses) fn(std::string(text::trim(a)));
  };
  if (dns) {
    for_each_address([&](const std::string& address) { screening.note(address); });
    screening.resolve_noted();
  }

  std::array<std::uint64_t, 3> per_action{};
  if (!options.json)
    fmt::print("{:<40} {:<7} {:<32} {}\n", "address", "action", "verdicts", "detail");
  for_each_address([&](const std::string& address) {
    const Judgement j = screening.judge(address);
    ++per_action[static_cast<std::size_t>(j.action)];
    if (options.json) {
      nlohmann::ordered_json line;
      line["address"] = address;
      line["action"] = to_string(j.action);
      line["verdicts"] = nlohmann::ordered_json::array();
      for (Verdict v : j.verdicts.list()) line["verdicts"].push_back(to_string(v));
      line["suggestion"] = j.suggestion.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(j.suggestion);
      std::cout << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
      return;
    }
    std::string verdicts;
    for (Verdict v : j.verdicts.list()) verdicts += (verdicts.empty() ? "" : ",") + std::string(to_string(v));
    std::string detail;
    if (!j.problem.empty()) detail = j.problem;
    if (!j.suggestion.empty()) detail = "did you mean " + j.suggestion + "?";
    if (!j.suppression.empty()) detail += (detail.empty() ? "" : "; ") + ("suppressed: " + j.suppression);
    fmt::print("{:<40} {:<7} {:<32} {}\n", address, to_string(j.action), verdicts.empty() ? "-" : verdicts, detail);
  });
  std::cout.flush();
  if (!options.json) {
    fmt::print("{} addresses: {} accept, {} warn, {} reject", per_action[0] + per_action[1] + per_action[2],
               per_action[0], per_action[1], per_action[2]);
    if (dns) fmt::print(" ({} domains looked up in DNS)\n", screening.dns_lookups());
    else fmt::print(" (no DNS checks)\n");
  }
  return 0;
}

CliCommand add_check_command(CLI::App& app) {
  struct State : ConfigState<CheckOptions> {
    std::string file;
    bool no_dns = false;
  };
  auto [cmd, state] =
      add_subcommand_with_state<State>(app, "check", "list-hygiene verdicts for addresses (nothing is queued)");
  cmd->add_option("addresses", state->options.addresses, "addresses to judge");
  cmd->add_option("--file", state->file, "one address a line, or a CSV file with an \"email\" column");
  cmd->add_flag("--json", state->options.json, "one JSON object a line");
  cmd->add_flag("--no-dns", state->no_dns, "no DNS lookups (no no_mail_host verdicts)");
  return config_command(cmd, state, [](State& s) {
    s.options.file = optional_path(s.file);
    s.options.dns = !s.no_dns;
    return check_command(s.options);
  });
}

}  // namespace kurier::engine
