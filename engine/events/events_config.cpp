// Reads [events] and [[webhook]] (contract in events_config.h). Start-up, main thread;
// every problem is an InputError with file, line and field.
#include "engine/events/events_config.h"

#include <set>

#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"

namespace kurier::engine {
namespace fs = std::filesystem;

namespace {

// A positive integer no larger than `max`.
std::optional<std::uint64_t> get_count(const toml::table& table, std::string_view key, const std::string& file,
                                       const std::string& qualified, std::int64_t min, std::int64_t max) {
  auto v = toml_get<std::int64_t>(table, key, file, qualified);
  if (!v) return std::nullopt;
  if (*v < min || *v > max)
    throw InputError(file, line_of(*table.get(key)), qualified,
                     "must be " + std::to_string(min) + ".." + std::to_string(max));
  return static_cast<std::uint64_t>(*v);
}

std::vector<EventType> read_types(const toml::table& w, const std::string& file) {
  std::vector<EventType> types;
  const toml::node* node = w.get("events");
  if (!node) return types;
  const toml::array* array = node->as_array();
  if (!array) throw InputError(file, line_of(*node), "webhook.events", "must be a list of event types");
  for (const auto& item : *array) {
    auto name = item.value<std::string>();
    auto type = name ? event_type_from_string(*name) : std::nullopt;
    if (!type) {
      std::string known;
      for (std::size_t i = 0; i < kEventTypes; ++i)
        known.append(i ? ", " : "").append(to_string(static_cast<EventType>(i)));
      throw InputError(file, line_of(item), "webhook.events",
                       "unknown event type " + (name ? "'" + *name + "'" : std::string("(not a string)")) +
                           "; known types: " + known);
    }
    types.push_back(*type);
  }
  return types;
}

std::chrono::milliseconds read_timeout(const toml::table& w, const std::string& file) {
  const toml::node* node = w.get("timeout");
  if (!node) return WebhookConfig{}.timeout;
  std::optional<std::chrono::seconds> d;
  if (auto n = node->value<std::int64_t>()) d = std::chrono::seconds(*n);
  if (auto s = node->value<std::string>()) d = parse_duration(*s);
  if (!d || d->count() < 1 || d->count() > 600)
    throw InputError(file, line_of(*node), "webhook.timeout", "must be a duration of 1s..600s (\"10s\")");
  return *d;
}

WebhookConfig read_webhook(const toml::node& item, const std::string& file) {
  const toml::table* t = item.as_table();
  if (!t) throw InputError(file, line_of(item), "webhook", "must be a table ([[webhook]])");
  reject_unknown_keys(*t, {"name", "url", "secret", "events", "batch", "timeout"}, {file, "webhook", true});
  WebhookConfig w;
  w.url = toml_get<std::string>(*t, "url", file, "webhook.url").value_or("");
  if (!w.url.starts_with("http://") && !w.url.starts_with("https://"))
    throw InputError(file, line_of(t->get("url") ? *t->get("url") : item), "webhook.url",
                     w.url.empty() ? "is required" : "must be an http:// or https:// URL: \"" + w.url + "\"");
  w.secret = toml_get<std::string>(*t, "secret", file, "webhook.secret").value_or("");
  if (w.secret.empty())
    throw InputError(file, line_of(item), "webhook.secret", "is required (the HMAC key of X-Kurier-Signature)");
  w.name = toml_get<std::string>(*t, "name", file, "webhook.name").value_or(w.url);
  w.events = read_types(*t, file);
  if (auto v = get_count(*t, "batch", file, "webhook.batch", 1, 10000)) w.batch = *v;
  w.timeout = read_timeout(*t, file);
  return w;
}

}  // namespace

void read_events_section(const toml::table& e, const std::string& file, const fs::path& base, EventsConfig& config) {
  reject_unknown_keys(e, {"enabled", "file", "max_bytes", "keep", "intake"}, {file, "events"});
  if (auto v = toml_get<bool>(e, "enabled", file, "events.enabled")) config.enabled = *v;
  if (auto v = toml_get<bool>(e, "intake", file, "events.intake")) config.intake = *v;
  if (auto v = toml_get<std::string>(e, "file", file, "events.file")) {
    if (v->empty()) throw InputError(file, line_of(*e.get("file")), "events.file", "must not be empty");
    config.file = fs::path(*v).is_absolute() ? fs::path(*v) : base / *v;
  }
  // At least 64 KiB: a file must hold a batch of events before it rotates.
  if (auto v = get_count(e, "max_bytes", file, "events.max_bytes", 65536, std::int64_t{1} << 40)) config.max_bytes = *v;
  if (auto v = get_count(e, "keep", file, "events.keep", 0, 100000)) config.keep = static_cast<std::uint32_t>(*v);
}

std::vector<WebhookConfig> read_webhook_section(const toml::node& node, const std::string& file,
                                                const EventsConfig& events) {
  const toml::array* array = node.as_array();
  if (!array) throw InputError(file, line_of(node), "webhook", "must be an array of tables ([[webhook]])");
  if (!events.enabled && !array->empty())
    throw InputError(file, line_of(node), "webhook", "needs the event log it follows: [events] enabled = false");
  std::vector<WebhookConfig> hooks;
  std::set<std::string> names;
  for (const auto& item : *array) {
    hooks.push_back(read_webhook(item, file));
    if (!names.insert(hooks.back().name).second)
      throw InputError(file, line_of(item), "webhook.name", "duplicate webhook name '" + hooks.back().name + "'");
  }
  return hooks;
}

fs::path event_log_file(const EventsConfig& config, const fs::path& queue_path) {
  return config.file.empty() ? queue_path / "events.jsonl" : config.file;
}

}  // namespace kurier::engine
