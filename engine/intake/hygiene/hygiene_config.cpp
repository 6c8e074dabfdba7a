// Reads the [hygiene] section of kurier.toml into HygieneOptions. Start-up only, on the
// thread that loads the configuration; every problem (unknown key or verdict, wrong
// type, a policy the verdict cannot take) is an InputError naming file, line and key.
#include "engine/intake/hygiene/hygiene_config.h"

#include <array>

#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"

namespace kurier::engine {
namespace {

// One [hygiene] table being read, for errors and relative paths.
struct HygieneSection {
  const toml::table& table;
  const std::string& file;
  const std::filesystem::path& base;

  std::string qualified(std::string_view key) const { return "hygiene." + std::string(key); }

  void flag(std::string_view key, bool& out) const {
    const toml::node* node = table.get(key);
    if (!node) return;
    auto v = node->value<bool>();
    if (!v) throw InputError(file, line_of(*node), qualified(key), "must be true or false");
    out = *v;
  }

  std::vector<std::string> strings(std::string_view key) const {
    std::vector<std::string> out;
    const toml::node* node = table.get(key);
    if (!node) return out;
    const toml::array* array = node->as_array();
    if (!array) throw InputError(file, line_of(*node), qualified(key), "must be a list of strings");
    for (const auto& item : *array) {
      auto v = item.value<std::string>();
      if (!v || v->empty()) throw InputError(file, line_of(item), qualified(key), "must be a list of non-empty strings");
      out.push_back(*v);
    }
    return out;
  }

  std::filesystem::path resolve(const std::string& p) const {
    return std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base / p;
  }
};

std::vector<std::string_view> verdict_names() {
  std::vector<std::string_view> names;
  for (std::size_t i = 0; i < kVerdictCount; ++i) names.emplace_back(to_string(static_cast<Verdict>(i)));
  return names;
}

// [hygiene.policy]: verdict = "reject" | "warn" | "off".
void read_policy(const toml::node& node, const std::string& file, HygieneOptions& options) {
  const toml::table* policy = node.as_table();
  if (!policy) throw InputError(file, line_of(node), "hygiene.policy", "must be a table ([hygiene.policy])");
  reject_unknown_keys(*policy, verdict_names(), {file, "hygiene.policy"});
  for (const auto& [key, value] : *policy) {
    const std::string qualified = "hygiene.policy." + std::string(key.str());
    const Verdict verdict = *verdict_from_string(key.str());
    auto text = value.value<std::string>();
    auto p = text ? policy_from_string(*text) : std::nullopt;
    if (!p) throw InputError(file, line_of(value), qualified, "must be \"reject\", \"warn\" or \"off\"");
    if (verdict == Verdict::syntax && *p != Policy::reject)
      throw InputError(file, line_of(value), qualified, "must be reject: an invalid address cannot be sent to");
    options[verdict] = *p;
  }
}

}  // namespace

void read_hygiene_section(const toml::table& section, const std::string& file, const std::filesystem::path& base,
                          HygieneOptions& options) {
  reject_unknown_keys(section,
                      {"smtputf8", "ip_literals", "fold_local_case", "disposable_files", "roles", "trap_keywords",
                       "typo_domains", "provider_syntax", "policy"},
                      {file, "hygiene"});
  const HygieneSection in{section, file, base};
  in.flag("smtputf8", options.syntax.smtputf8);
  in.flag("ip_literals", options.syntax.ip_literals);
  in.flag("fold_local_case", options.fold_local_case);
  for (const auto& p : in.strings("disposable_files")) options.disposable_files.push_back(in.resolve(p));
  for (auto& r : in.strings("roles")) options.roles.push_back(std::move(r));
  for (auto& k : in.strings("trap_keywords")) options.trap_keywords.push_back(std::move(k));
  for (auto& d : in.strings("typo_domains")) options.typo_domains.push_back(std::move(d));
  if (const toml::node* node = section.get("provider_syntax")) {
    auto v = node->value<std::string>();
    if (!v || v->empty()) throw InputError(file, line_of(*node), "hygiene.provider_syntax", "must be a file name");
    options.provider_syntax_file = in.resolve(*v);
  }
  if (const toml::node* node = section.get("policy")) read_policy(*node, file, options);
}

}  // namespace kurier::engine
