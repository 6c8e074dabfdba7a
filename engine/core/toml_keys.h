// Known keys of a TOML table: every configuration file (kurier.toml, shaping.toml,
// campaign.toml, hygiene provider rules) rejects names it does not know, so a typo is an
// error instead of a silently ignored setting. Start-up only, any thread; throws InputError.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "engine/core/input_error.h"

namespace kurier::engine {

// Where a table sits, for messages: "kurier.toml:7: field 'queue.size_limt': unknown
// key 'size_limt' in [queue]; did you mean 'path'?".
struct TomlPlace {
  std::string file;
  std::string path;       // "queue", "provider.gmail", "dkim.key"; "" = the top level
  bool array_item = false;  // an element of [[path]]
};

// Throws InputError for the first key of `table` (in file order) not in `known`,
// naming its line and the qualified key, with the nearest known name when one is close
// (nearest_name) and the list of known names otherwise. A table value is called a
// section ("unknown section [smtp.timeout]; did you mean [smtp.timeouts]?").
void reject_unknown_keys(const toml::table& table, std::initializer_list<std::string_view> known,
                         const TomlPlace& place);
void reject_unknown_keys(const toml::table& table, const std::vector<std::string_view>& known,
                         const TomlPlace& place);

// The entry of `known` closest to `name` by edit distance (adjacent transpositions
// count as one edit), if it is close: at most 2 edits and at most a third of the
// length of `name` (at least 1). "" when none is.
std::string nearest_name(std::string_view name, const std::vector<std::string_view>& known);

// 1-based line of a node, for InputError.
inline std::size_t line_of(const toml::node& node) { return node.source().begin.line; }

// `table[key]` as a T; nullopt when absent; InputError naming `file`, its line and the
// `qualified` key when it has another type.
template <typename T>
std::optional<T> toml_get(const toml::table& table, std::string_view key, const std::string& file,
                          const std::string& qualified) {
  const toml::node* node = table.get(key);
  if (!node) return std::nullopt;
  if (auto value = node->value<T>()) return *value;
  throw InputError(file, line_of(*node), qualified, "has the wrong type");
}

}  // namespace kurier::engine
