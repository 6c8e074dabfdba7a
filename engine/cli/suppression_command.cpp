// kurier suppress ... (see suppression_command.h). Main thread; the import reads the
// whole CSV into memory first (an entry is ~60 bytes: a million-row opt-out list is
// ~60 MB) so that one bad row stores nothing.
#include "engine/cli/suppression_command.h"

#include <fstream>
#include <iostream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <CLI/CLI.hpp>

#include "common/log.h"
#include "common/text.h"
#include "engine/intake/address.h"
#include "engine/core/config.h"
#include "engine/intake/csv.h"
#include "engine/delivery/delivery.h"
#include "engine/core/input_error.h"
#include "engine/core/text_format.h"
#include "queue/store.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {
namespace {

// Spaces and tabs only (unlike text::trim): a CSV cell keeps other control bytes.
std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

int import_csv(queue::Store& store, const std::filesystem::path& file) {
  const std::string name = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(name, 0, "", "cannot read file");
  CsvReader csv(in, name);
  std::vector<std::string> row;
  if (!csv.next(row)) throw InputError(name, 0, "", "empty file (a header row with an `address` column is required)");
  const auto address_col = static_cast<int>(address_column(row, csv, {"address", "email"}));
  int reason_col = -1, time_col = -1;
  for (std::size_t i = 0; i < row.size(); ++i) {
    const auto col = text::lower_ascii(trim(row[i]));
    if (col == "reason") reason_col = static_cast<int>(i);
    if (col == "time") time_col = static_cast<int>(i);
  }
  const std::size_t columns = row.size();
  const std::int64_t now = system_now_ms();
  const auto& address_header = row[static_cast<std::size_t>(address_col)];
  const std::string address_field = trim(address_header);

  std::vector<queue::Suppression> entries;
  std::uint64_t already = 0;
  while (csv.next(row)) {
    const auto line = csv.line();
    if (row.size() != columns)
      throw InputError(name, line, "", fmt::format("expected {} columns, found {}", columns, row.size()));
    queue::Suppression entry;
    const std::string address = trim(row[static_cast<std::size_t>(address_col)]);
    if (auto problem = address_problem(address))
      throw InputError(name, line, address_field, "not a valid address: \"" + address + "\": " + *problem);
    entry.address = normalize_address(address);  // the store's key lower-cases the rest
    entry.reason = reason_col >= 0 ? trim(row[static_cast<std::size_t>(reason_col)]) : "";
    if (entry.reason.find_first_of("\r\n") != std::string::npos)
      throw InputError(name, line, "reason", "line breaks are not allowed");
    if (entry.reason.empty()) entry.reason = "import";
    entry.time_ms = now;
    if (time_col >= 0) {
      const std::string text = trim(row[static_cast<std::size_t>(time_col)]);
      if (!text.empty()) {
        auto t = parse_time_ms(text);
        if (!t) throw InputError(name, line, "time", "not a time like 2026-01-31T12:00:00Z: \"" + text + "\"");
        entry.time_ms = *t;
      }
    }
    if (store.suppression(entry.address)) {
      ++already;
      continue;
    }
    entries.push_back(std::move(entry));
  }
  store.suppress_all(entries);
  fmt::print("kurier: {}: {} addresses added to the suppression list, {} already on it\n", name, entries.size(),
             already);
  return 0;
}

}  // namespace

std::optional<std::int64_t> parse_time_ms(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    if (text.size() > 15) return std::nullopt;
    return std::stoll(std::string(text));
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, consumed = 0;
  const std::string t(text);
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6) return std::nullopt;
  std::string_view rest = text.substr(static_cast<std::size_t>(consumed));
  int ms = 0;
  if (rest.starts_with('.')) {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 3) ms = ms * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) ms *= 10;
  }
  if (rest != "Z" && rest != "+00:00") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

int suppress_command(const SuppressOptions& options) {
  Config config = load_config(options.config);
  log::set_level(config.log.level);
  if (options.action == "import") {
    // Read problems show before the queue is touched.
    if (!std::ifstream(options.file)) throw InputError(options.file.string(), 0, "", "cannot read file");
    auto store = open_queue(config);
    return import_csv(*store, options.file);
  }
  auto store = open_queue(config);
  if (options.action == "export" || options.action == "list") {
    const bool csv = options.action == "export" && options.format == "csv";
    if (options.action == "export" && options.format != "csv" && options.format != "json")
      throw InputError("--format", 0, "", "must be csv or json");
    if (csv) std::cout << "address,reason,time\n";
    std::uint64_t n = 0;
    store->for_each_suppression([&](const queue::Suppression& s) {
      ++n;
      if (csv)
        std::cout << csv_field(s.address) << ',' << csv_field(s.reason) << ',' << iso_time(s.time_ms) << '\n';
      else if (options.action == "export")
        std::cout << nlohmann::json{{"address", s.address}, {"reason", s.reason}, {"time", iso_time(s.time_ms)}}.dump(
                         -1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << '\n';
      else
        fmt::print("{:<40} {:<32} {}\n", s.address, s.reason, iso_time(s.time_ms));
      return true;
    });
    if (options.action == "list") fmt::print("{} suppressed addresses\n", n);
    return 0;
  }
  if (options.action == "add") {
    if (auto problem = address_problem(options.address))
      throw InputError("ADDRESS", 0, "", "not a valid address: \"" + options.address + "\": " + *problem);
    store->suppress({normalize_address(options.address), options.reason, system_now_ms()});
    fmt::print("kurier: {} suppressed ({})\n", options.address, options.reason);
    return 0;
  }
  if (options.action == "remove") {
    const auto key = address_problem(options.address) ? options.address : normalize_address(options.address);
    if (!store->unsuppress(key)) {
      fmt::print(stderr, "kurier: {} is not on the suppression list\n", options.address);
      return 2;
    }
    fmt::print("kurier: {} removed from the suppression list\n", options.address);
    return 0;
  }
  throw InputError("suppress", 0, "", "unknown action '" + options.action + "'");
}

CliCommand add_suppress_command(CLI::App& app) {
  auto [suppress, state] = add_subcommand_with_state<ConfigState<SuppressOptions>>(
      app, "suppress", "the suppression list: import, export, list, add, remove");
  suppress->require_subcommand(1);
  auto* import = suppress->add_subcommand("import", "add the addresses of a CSV file (address,reason,time)");
  import->add_option("file", state->options.file, "CSV with a header row and an address (or email) column")->required();
  auto* export_ = suppress->add_subcommand("export", "print the list as CSV (address,reason,time)");
  export_->add_option("--format", state->options.format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  auto* list = suppress->add_subcommand("list", "print the list as a table");
  auto* add = suppress->add_subcommand("add", "suppress one address");
  add->add_option("address", state->options.address, "address")->required();
  add->add_option("--reason", state->options.reason, "reason (default: manual)");
  auto* remove = suppress->add_subcommand("remove", "take one address off the list");
  remove->add_option("address", state->options.address, "address")->required();
  const std::vector<CLI::App*> actions = {import, export_, list, add, remove};
  for (auto* action : actions) add_config_option(*action, state->config);
  return {suppress, run_with_config(state, [actions](auto& s) {
            for (auto* action : actions)
              if (*action) s.options.action = action->get_name();
            return suppress_command(s.options);
          })};
}

}  // namespace kurier::engine
