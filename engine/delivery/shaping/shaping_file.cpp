// Reads shaping.toml (toml++) into ShapingRules: [default], [provider.NAME],
// [domain."x"], [[throttle]]. Runs once at start-up on the loading thread; every problem,
// unknown sections and keys included, is an InputError naming file, line and key.
#include <algorithm>
#include <array>
#include <cmath>
#include <regex>

#include <toml++/toml.h>

#include "dns/message.h"
#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"
#include "engine/delivery/shaping/shaping.h"
#include "engine/delivery/tls_policy.h"

namespace kurier::engine {
namespace {

using dns::wire::normalize_name;  // lower-case, no trailing dot

// Reads one block of limit keys over `limits`; `prefix` names the block in errors.
class BlockReader {
 public:
  BlockReader(const std::string& file, const toml::table& table, std::string prefix)
      : file_(file), table_(table), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const toml::node& node, std::string_view key, const std::string& message) const {
    throw InputError(file_, line_of(node), prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key),
                     message);
  }

  std::optional<std::int64_t> positive_int(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (!node) return std::nullopt;
    auto v = node->value<std::int64_t>();
    if (!v || !node->is_integer()) fail(*node, key, "must be an integer");
    if (*v < 1 || *v > 1'000'000) fail(*node, key, "must be 1..1000000");
    return *v;
  }

  std::optional<std::chrono::seconds> duration(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (!node) return std::nullopt;
    return duration_of(*node, key);
  }

  std::chrono::seconds duration_of(const toml::node& node, std::string_view key) const {
    auto text = node.value<std::string>();
    auto d = text ? parse_duration(*text) : std::nullopt;
    if (!d) fail(node, key, "not a duration like \"30s\", \"5m\", \"2h\", \"5d\"");
    return *d;
  }

  std::optional<Rate> rate(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (!node) return std::nullopt;
    auto text = node->value<std::string>();
    auto r = text ? parse_rate(*text) : std::nullopt;
    if (!r) fail(*node, key, "not a rate like \"1000/s\", \"300/m\", \"20000/h\"");
    return *r;
  }

  std::vector<std::string> patterns(std::string_view key) const {
    std::vector<std::string> out;
    const toml::node* node = table_.get(key);
    if (!node) return out;
    const toml::array* array = node->as_array();
    if (!array) fail(*node, key, "must be a list of names like [\"*.example.com\"]");
    for (const auto& item : *array) {
      auto text = item.value<std::string>();
      if (!text || text->empty() || !item.is_string()) fail(item, key, "must be a list of non-empty strings");
      out.push_back(normalize_name(*text));
    }
    return out;
  }

  void limits(ShapingLimits& out) const {
    if (auto v = positive_int("connections")) out.connections = static_cast<int>(*v);
    if (auto v = positive_int("messages_per_connection")) out.messages_per_connection = static_cast<int>(*v);
    if (auto v = rate("rate")) out.rate = *v;
    if (auto v = rate("connection_rate")) out.connection_rate = *v;
    if (const toml::node* node = table_.get("retry")) {
      const toml::array* array = node->as_array();
      if (!array || array->empty()) fail(*node, "retry", "must be a list like [\"5m\", \"15m\"]");
      out.retry.clear();
      for (const auto& item : *array) out.retry.push_back(duration_of(item, "retry"));
    }
    if (auto v = duration("max_age")) out.max_age = *v;
    if (auto v = duration("greylist_delay")) out.greylist_delay = *v;
    if (const toml::node* node = table_.get("tls")) {
      auto name = node->value<std::string>();
      out.tls = name ? tls_policy_from_string(*name) : std::nullopt;
      if (!out.tls) fail(*node, "tls", "must be \"opportunistic\", \"required\" or \"none\"");
    }
    if (auto v = duration("recovery_interval")) {
      if (v->count() < 1) fail(*table_.get("recovery_interval"), "recovery_interval", "must be at least 1s");
      out.recovery_interval = *v;
    }
  }

  std::vector<ThrottleRule> throttle_rules(const toml::node& node, std::string_view key) const {
    std::vector<ThrottleRule> out;
    const toml::array* array = node.as_array();
    if (!array) fail(node, key, "must be an array of tables ([[...]]) with pattern, action, duration");
    for (const auto& item : *array) {
      const toml::table* t = item.as_table();
      if (!t) fail(item, key, "must be a table with pattern, action, duration");
      BlockReader rule(file_, *t, prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key));
      rule.only_keys({"pattern", "action", "duration"}, true);
      const toml::node* pattern = t->get("pattern");
      auto text = pattern ? pattern->value<std::string>() : std::nullopt;
      if (!text || text->empty()) rule.fail(pattern ? *pattern : item, "pattern", "is required (a regular expression)");
      ThrottleAction action = ThrottleAction::slow;
      if (const toml::node* a = t->get("action")) {
        auto name = a->value<std::string>();
        if (name && *name == "slow") action = ThrottleAction::slow;
        else if (name && *name == "suspend") action = ThrottleAction::suspend;
        else rule.fail(*a, "action", "must be \"slow\" or \"suspend\"");
      }
      std::chrono::seconds duration{60};
      if (auto d = rule.duration("duration")) duration = *d;
      try {
        out.push_back(make_throttle_rule(*text, action, duration));
      } catch (const std::regex_error& e) {
        rule.fail(*pattern, "pattern", std::string("not a valid regular expression: ") + e.what());
      }
    }
    return out;
  }

  // Unknown keys are typos: reject them instead of silently ignoring a limit.
  // `array_item`: the table is one element of [[prefix]].
  void only_keys(const std::vector<std::string_view>& allowed, bool array_item = false) const {
    reject_unknown_keys(table_, allowed, {file_, prefix_, array_item});
  }

 private:
  const std::string& file_;
  const toml::table& table_;
  std::string prefix_;
};

constexpr std::array<std::string_view, 9> kLimitKeys = {
    "connections", "messages_per_connection", "rate",           "connection_rate",
    "retry",       "max_age",                 "greylist_delay", "recovery_interval", "tls"};

std::vector<std::string_view> with(std::initializer_list<std::string_view> more) {
  std::vector<std::string_view> out(kLimitKeys.begin(), kLimitKeys.end());
  out.insert(out.end(), more);
  return out;
}

void read_default(const toml::node& node, const std::string& file, ShapingRules& rules) {
  const toml::table* def = node.as_table();
  if (!def) throw InputError(file, line_of(node), "default", "must be a table");
  BlockReader reader(file, *def, "default");
  reader.only_keys(with({}));
  reader.limits(rules.defaults);
}

// [provider.NAME] tables, kept in file order.
void read_providers(const toml::node& node, const std::string& file, ShapingRules& rules) {
  const toml::table* providers = node.as_table();
  if (!providers) throw InputError(file, line_of(node), "provider", "must be tables [provider.NAME]");
  for (const auto& [k, v] : *providers) {
    const std::string prefix = "provider." + std::string(k.str());
    const toml::table* t = v.as_table();
    if (!t) throw InputError(file, line_of(v), prefix, "must be a table");
    BlockReader reader(file, *t, prefix);
    reader.only_keys(with({"match_domains", "match_mx", "on_reply"}));
    ProviderRule rule;
    rule.name = std::string(k.str());
    rule.limits = rules.defaults;
    reader.limits(rule.limits);
    rule.match_domains = reader.patterns("match_domains");
    rule.match_mx = reader.patterns("match_mx");
    if (rule.match_domains.empty() && rule.match_mx.empty())
      throw InputError(file, line_of(v), prefix + ".match_domains", "a provider needs match_domains or match_mx");
    if (const toml::node* r = t->get("on_reply")) rule.on_reply = reader.throttle_rules(*r, "on_reply");
    rules.providers.push_back(std::move(rule));
  }
  // toml++ tables are ordered by key, not by position: keep the file's order, which
  // decides between overlapping providers.
  std::stable_sort(rules.providers.begin(), rules.providers.end(), [&](const auto& a, const auto& b) {
    return line_of(*providers->get(a.name)) < line_of(*providers->get(b.name));
  });
}

// [domain."example.com"] tables.
void read_domains(const toml::node& node, const std::string& file, ShapingRules& rules) {
  const toml::table* domains = node.as_table();
  if (!domains) throw InputError(file, line_of(node), "domain", "must be tables [domain.\"example.com\"]");
  for (const auto& [k, v] : *domains) {
    const std::string prefix = "domain." + std::string(k.str());
    const toml::table* t = v.as_table();
    if (!t) throw InputError(file, line_of(v), prefix, "must be a table");
    BlockReader reader(file, *t, prefix);
    reader.only_keys(with({"on_reply"}));
    DomainRule rule;
    rule.domain = normalize_name(std::string(k.str()));
    rule.limits = rules.defaults;
    reader.limits(rule.limits);
    if (const toml::node* r = t->get("on_reply")) rule.on_reply = reader.throttle_rules(*r, "on_reply");
    rules.domains[rule.domain] = std::move(rule);
  }
}

ShapingRules parse_root(const toml::table& root, const std::string& file) {
  reject_unknown_keys(root, {"default", "provider", "domain", "throttle"}, {file, ""});
  ShapingRules rules;
  // [default] first: providers and domains inherit from it.
  if (const toml::node* node = root.get("default")) read_default(*node, file, rules);
  if (const toml::node* node = root.get("throttle")) rules.throttle = BlockReader(file, root, "").throttle_rules(*node, "throttle");
  if (const toml::node* node = root.get("provider")) read_providers(*node, file, rules);
  if (const toml::node* node = root.get("domain")) read_domains(*node, file, rules);
  return rules;
}


}  // namespace

std::optional<Rate> parse_rate(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const std::string number(text.substr(0, slash));
  const std::string_view unit = text.substr(slash + 1);
  double value = 0;
  std::size_t pos = 0;
  try {
    value = std::stod(number, &pos);
  } catch (...) {
    return std::nullopt;
  }
  if (pos != number.size() || !(value > 0) || !std::isfinite(value)) return std::nullopt;
  double seconds = 0;
  if (unit == "s") seconds = 1;
  else if (unit == "m") seconds = 60;
  else if (unit == "h") seconds = 3600;
  else if (unit == "d") seconds = 86400;
  else return std::nullopt;
  return Rate{value / seconds};
}


ShapingRules load_shaping(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(file, 0, "", "cannot read file");
  try {
    return parse_root(toml::parse_file(file), file);
  } catch (const toml::parse_error& e) {
    throw InputError(file, e.source().begin.line, "", std::string(e.description()));
  }
}

ShapingRules parse_shaping(std::string_view text, const std::string& origin) {
  try {
    return parse_root(toml::parse(text, origin), origin);
  } catch (const toml::parse_error& e) {
    throw InputError(origin, e.source().begin.line, "", std::string(e.description()));
  }
}

}  // namespace kurier::engine
