// The known-keys check shared by every configuration parser. Runs at start-up on the
// caller's thread; its only failure is the InputError it exists to throw.
#include "engine/core/toml_keys.h"

#include <algorithm>

#include "engine/core/input_error.h"

namespace kurier::engine {
namespace {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
// two adjacent characters ("tsl" -> "tls") cost one each.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string qualified(const TomlPlace& place, std::string_view key) {
  return place.path.empty() ? std::string(key) : place.path + "." + std::string(key);
}

// "in [queue]", "in [[dkim.key]]", "at the top level".
std::string where(const TomlPlace& place) {
  if (place.path.empty()) return "at the top level";
  return place.array_item ? "in [[" + place.path + "]]" : "in [" + place.path + "]";
}

// How a known name is written in a message: sections in brackets.
std::string spelled(const TomlPlace& place, std::string_view name, bool section) {
  return section ? "[" + qualified(place, name) + "]" : "'" + std::string(name) + "'";
}

[[noreturn]] void unknown(const TomlPlace& place, std::string_view key,
                          const toml::node& value, const std::vector<std::string_view>& known) {
  const bool section = value.is_table() || value.is_array_of_tables();
  std::string message = section ? "unknown section " + spelled(place, key, true)
                                : "unknown key '" + std::string(key) + "' " + where(place);
  if (const std::string near = nearest_name(key, known); !near.empty()) {
    message += "; did you mean " + spelled(place, near, section) + "?";
  } else if (known.empty()) {
    message += "; it takes no keys";
  } else {
    message += "; known names: ";
    for (std::size_t i = 0; i < known.size(); ++i) message.append(i ? ", " : "").append(known[i]);
  }
  throw InputError(place.file, line_of(value), qualified(place, key), message);
}

}  // namespace

std::string nearest_name(std::string_view name, const std::vector<std::string_view>& known) {
  const std::size_t limit = std::min<std::size_t>(2, std::max<std::size_t>(1, name.size() / 3));
  std::string best;
  std::size_t best_distance = limit + 1;
  for (std::string_view candidate : known) {
    const std::size_t distance = edit_distance(name, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

void reject_unknown_keys(const toml::table& table, const std::vector<std::string_view>& known,
                         const TomlPlace& place) {
  // toml++ iterates in key order; the first unknown key in the file is the one to name.
  const toml::node* first = nullptr;
  std::string_view first_key;
  for (const auto& [key, value] : table) {
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    if (!first || line_of(value) < line_of(*first)) {
      first = &value;
      first_key = key.str();
    }
  }
  if (first) unknown(place, first_key, *first, known);
}

void reject_unknown_keys(const toml::table& table, std::initializer_list<std::string_view> known,
                         const TomlPlace& place) {
  reject_unknown_keys(table, std::vector<std::string_view>(known), place);
}

}  // namespace kurier::engine
