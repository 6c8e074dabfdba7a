// Suppression lists as CSV files (see suppression_csv.h). Any thread; bad rows are
// InputErrors naming file, line and field.
#include "engine/intake/suppression_csv.h"

#include <cstdio>
#include <ctime>
#include <fstream>

#include <fmt/format.h>

#include "common/text.h"
#include "engine/core/input_error.h"
#include "engine/intake/address.h"
#include "engine/intake/csv.h"

namespace kurier::engine {
namespace {

// Spaces and tabs only (unlike text::trim): a CSV cell keeps other control bytes.
std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

std::vector<queue::Suppression> read_rows(std::istream& in, const std::string& name, std::int64_t now) {
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
  const auto& address_header = row[static_cast<std::size_t>(address_col)];
  const std::string address_field = trim(address_header);

  std::vector<queue::Suppression> entries;
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
    entries.push_back(std::move(entry));
  }
  return entries;
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

std::vector<queue::Suppression> read_suppression_csv(const std::filesystem::path& path, const std::string& name,
                                                     std::int64_t now) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(name, 0, "", "cannot read file");
  return read_rows(in, name, now);
}


}  // namespace kurier::engine
