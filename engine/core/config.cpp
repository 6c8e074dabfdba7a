// Loads kurier.toml with toml++, one reader per section (shaping.toml is read by
// engine/delivery/shaping/shaping_file.cpp). Runs once at start-up on the main thread;
// every problem, unknown sections and keys included, is an InputError with file, line
// and key, so the CLI exits 2 with a message a user can act on.
#include "engine/core/config.h"

#include <unistd.h>

#include <cctype>

#include <toml++/toml.h>

#include "bounce/bounce.h"
#include "common/text.h"
#include "engine/intake/hygiene/hygiene_config.h"
#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"
#include "engine/delivery/tls_policy.h"

namespace kurier::engine {
namespace fs = std::filesystem;

namespace {

// The kurier.toml being read: its name for errors, its folder for relative paths.
struct ConfigFile {
  std::string file;
  fs::path base;
  fs::path resolve(const std::string& p) const { return fs::path(p).is_absolute() ? fs::path(p) : base / p; }
};

std::chrono::milliseconds get_ms(const toml::table& table, std::string_view key, const std::string& file,
                                 const std::string& qualified, std::chrono::milliseconds fallback) {
  auto v = toml_get<std::int64_t>(table, key, file, qualified);
  if (!v) return fallback;
  if (*v <= 0) throw InputError(file, line_of(*table.get(key)), qualified, "must be positive");
  return std::chrono::milliseconds(*v);
}

// A TCP port: 1..65535.
std::optional<std::uint16_t> get_port(const toml::table& table, const std::string& file, const std::string& qualified) {
  auto v = toml_get<std::int64_t>(table, "port", file, qualified);
  if (!v) return std::nullopt;
  if (*v < 1 || *v > 65535) throw InputError(file, line_of(*table.get("port")), qualified, "must be 1..65535");
  return static_cast<std::uint16_t>(*v);
}

// A list of non-empty strings; `what` says what they are in the error.
std::vector<std::string> get_strings(const toml::table& table, std::string_view key, const std::string& file,
                                     const std::string& qualified, const std::string& what) {
  std::vector<std::string> out;
  const toml::node* node = table.get(key);
  if (!node) return out;
  const toml::array* array = node->as_array();
  if (!array) throw InputError(file, line_of(*node), qualified, what);
  for (const auto& item : *array) {
    auto text = item.value<std::string>();
    if (!text || text->empty()) throw InputError(file, line_of(item), qualified, what);
    out.push_back(*text);
  }
  return out;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

toml::table parse_toml(const fs::path& path) {
  try {
    return toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw InputError(path.string(), e.source().begin.line, "", std::string(e.description()));
  }
}

// The section `name` of the file, or null when absent; anything but a table is an error.
const toml::table* section(const toml::table& root, std::string_view name, const ConfigFile& in) {
  const toml::node* node = root.get(name);
  if (!node) return nullptr;
  if (const toml::table* table = node->as_table()) return table;
  throw InputError(in.file, line_of(*node), std::string(name), "must be a table ([" + std::string(name) + "])");
}

// --- one reader per section; each rejects keys it does not know ---------------

void read_queue(const toml::table& q, const ConfigFile& in, Config& config) {
  reject_unknown_keys(q, {"path"}, {in.file, "queue"});
  if (auto v = toml_get<std::string>(q, "path", in.file, "queue.path")) config.queue.path = in.resolve(*v);
}

void read_dns(const toml::table& d, const ConfigFile& in, Config& config) {
  reject_unknown_keys(d, {"servers", "timeout_ms"}, {in.file, "dns"});
  for (auto& server : get_strings(d, "servers", in.file, "dns.servers", "must be a list of \"host:port\""))
    config.dns.servers.push_back(std::move(server));
  config.dns.timeout = get_ms(d, "timeout_ms", in.file, "dns.timeout_ms", config.dns.timeout);
}

void read_smtp_timeouts(const toml::table& t, const ConfigFile& in, smtp::Timeouts& to) {
  static const std::vector<std::pair<std::string_view, std::chrono::milliseconds smtp::Timeouts::*>> kFields = {
      {"connect_ms", &smtp::Timeouts::connect},     {"greeting_ms", &smtp::Timeouts::greeting},
      {"ehlo_ms", &smtp::Timeouts::ehlo},           {"starttls_ms", &smtp::Timeouts::starttls},
      {"mail_ms", &smtp::Timeouts::mail},           {"rcpt_ms", &smtp::Timeouts::rcpt},
      {"data_init_ms", &smtp::Timeouts::data_init}, {"data_block_ms", &smtp::Timeouts::data_block},
      {"data_term_ms", &smtp::Timeouts::data_term}, {"rset_ms", &smtp::Timeouts::rset},
      {"quit_ms", &smtp::Timeouts::quit}};
  std::vector<std::string_view> known;
  for (const auto& field : kFields) known.push_back(field.first);
  reject_unknown_keys(t, known, {in.file, "smtp.timeouts"});
  for (const auto& [key, member] : kFields)
    to.*member = get_ms(t, key, in.file, "smtp.timeouts." + std::string(key), to.*member);
}

void read_smtp(const toml::table& s, const ConfigFile& in, Config& config) {
  reject_unknown_keys(s, {"helo", "port", "tls", "timeouts"}, {in.file, "smtp"});
  if (auto v = toml_get<std::string>(s, "helo", in.file, "smtp.helo")) config.smtp.helo = *v;
  if (auto port = get_port(s, in.file, "smtp.port")) config.smtp.port = *port;
  if (auto v = toml_get<std::string>(s, "tls", in.file, "smtp.tls")) {
    // "disabled": an alias kept for configurations written before "none".
    auto policy = *v == "disabled" ? smtp::TlsPolicy::disabled : tls_policy_from_string(*v);
    if (!policy) throw InputError(in.file, line_of(*s.get("tls")), "smtp.tls", "must be opportunistic, required or none");
    config.smtp.tls = *policy;
  }
  if (const toml::table* t = section(s, "timeouts", in)) read_smtp_timeouts(*t, in, config.smtp.timeouts);
}

void read_mta_sts(const toml::table& m, const ConfigFile& in, Config& config) {
  reject_unknown_keys(m, {"enabled", "port", "ca_file", "timeout_ms"}, {in.file, "mta_sts"});
  auto& o = config.mta_sts;
  if (auto v = toml_get<bool>(m, "enabled", in.file, "mta_sts.enabled")) o.enabled = *v;
  if (auto port = get_port(m, in.file, "mta_sts.port")) o.port = *port;
  if (auto v = toml_get<std::string>(m, "ca_file", in.file, "mta_sts.ca_file")) {
    o.ca_file = in.resolve(*v).string();
    if (!fs::exists(o.ca_file))
      throw InputError(in.file, line_of(*m.get("ca_file")), "mta_sts.ca_file", "file not found: " + o.ca_file);
  }
  o.timeout = get_ms(m, "timeout_ms", in.file, "mta_sts.timeout_ms", o.timeout);
}

void read_verp(const toml::table& v, const ConfigFile& in, Config& config) {
  reject_unknown_keys(v, {"secret"}, {in.file, "verp"});
  if (auto secret = toml_get<std::string>(v, "secret", in.file, "verp.secret")) config.verp.secret = *secret;
}

DkimKey read_dkim_key(const toml::node& item, const ConfigFile& in) {
  const toml::table* t = item.as_table();
  if (!t) throw InputError(in.file, line_of(item), "dkim.key", "must be a table with domain, selector, key");
  reject_unknown_keys(*t, {"domain", "selector", "key"}, {in.file, "dkim.key", true});
  auto need = [&](std::string_view name) {
    auto v = toml_get<std::string>(*t, name, in.file, "dkim.key." + std::string(name));
    if (!v || v->empty()) throw InputError(in.file, line_of(item), "dkim.key." + std::string(name), "is required");
    return *v;
  };
  DkimKey key;
  key.domain = text::lower_ascii(need("domain"));
  key.selector = need("selector");
  key.key = in.resolve(need("key"));
  return key;
}

void read_dkim(const toml::table& d, const ConfigFile& in, Config& config) {
  reject_unknown_keys(d, {"key"}, {in.file, "dkim"});
  const toml::node* node = d.get("key");
  if (!node) return;
  const toml::array* keys = node->as_array();
  if (!keys) throw InputError(in.file, line_of(*node), "dkim.key", "must be an array of tables ([[dkim.key]])");
  for (const auto& item : *keys) config.dkim.keys.push_back(read_dkim_key(item, in));
}

void read_http(const toml::table& h, const ConfigFile& in, Config& config) {
  reject_unknown_keys(h, {"listen", "token"}, {in.file, "http"});
  if (auto v = toml_get<std::string>(h, "listen", in.file, "http.listen")) config.http.listen = *v;
  if (auto v = toml_get<std::string>(h, "token", in.file, "http.token")) config.http.token = *v;
}

void read_bounce(const toml::table& b, const ConfigFile& in, Config& config) {
  reject_unknown_keys(b, {"listen", "soft_limit", "domains", "rules"}, {in.file, "bounce"});
  if (auto v = toml_get<std::string>(b, "listen", in.file, "bounce.listen")) config.bounce.listen = *v;
  if (auto v = toml_get<std::int64_t>(b, "soft_limit", in.file, "bounce.soft_limit")) {
    if (*v < 0 || *v > 1000) throw InputError(in.file, line_of(*b.get("soft_limit")), "bounce.soft_limit", "must be 0..1000");
    config.bounce.soft_limit = static_cast<std::uint32_t>(*v);
  }
  for (const auto& domain : get_strings(b, "domains", in.file, "bounce.domains", "must be a list of domains"))
    config.bounce.domains.push_back(text::lower_ascii(domain));
  if (auto v = toml_get<std::string>(b, "rules", in.file, "bounce.rules")) {
    config.bounce.rules_file = in.resolve(*v);
    try {
      config.bounce.rules = std::make_shared<const bounce::Rules>(bounce::Rules::load(config.bounce.rules_file));
    } catch (const bounce::RulesError& e) {
      // The rules file's own location: that is where the mistake is.
      throw InputError(e.file(), e.line(), e.field(), e.message());
    }
  }
}

void read_engine(const toml::table& e, const ConfigFile& in, Config& config) {
  reject_unknown_keys(e, {"workers", "window"}, {in.file, "engine"});
  if (auto v = toml_get<std::int64_t>(e, "workers", in.file, "engine.workers")) {
    if (*v < 0 || *v > 64) throw InputError(in.file, line_of(*e.get("workers")), "engine.workers", "must be 0..64");
    config.engine.workers = static_cast<int>(*v);
  }
  if (auto v = toml_get<std::int64_t>(e, "window", in.file, "engine.window")) {
    if (*v < 1) throw InputError(in.file, line_of(*e.get("window")), "engine.window", "must be >= 1");
    config.engine.window = static_cast<std::size_t>(*v);
  }
}

// A share given as 0.05 or as "5%".
double read_share(const toml::table& t, std::string_view key, const ConfigFile& in, const std::string& field) {
  const toml::node* node = t.get(key);
  std::optional<double> value;
  if (auto d = node->value<double>()) value = *d;
  if (auto s = node->value<std::string>(); s && !s->empty() && s->back() == '%') {
    try {
      std::size_t used = 0;
      double percent = std::stod(s->substr(0, s->size() - 1), &used);
      if (used == s->size() - 1) value = percent / 100;
    } catch (const std::exception&) {
    }
  }
  if (!value || *value < 0 || *value > 1)
    throw InputError(in.file, line_of(*node), field, "must be a share between 0 and 1 (0.05) or a percentage (\"5%\")");
  return *value;
}

void read_breaker(const toml::table& b, const ConfigFile& in, Config& config) {
  reject_unknown_keys(b, {"hard_bounce_rate", "min_attempts", "complaint_rate", "min_deliveries"}, {in.file, "breaker"});
  if (b.contains("hard_bounce_rate"))
    config.breaker.hard_bounce_rate = read_share(b, "hard_bounce_rate", in, "breaker.hard_bounce_rate");
  if (b.contains("complaint_rate"))
    config.breaker.complaint_rate = read_share(b, "complaint_rate", in, "breaker.complaint_rate");
  for (auto [key, target] : {std::pair{"min_attempts", &config.breaker.min_attempts},
                             std::pair{"min_deliveries", &config.breaker.min_deliveries}}) {
    auto field = std::string("breaker.") + key;
    if (auto v = toml_get<std::int64_t>(b, key, in.file, field)) {
      if (*v < 1) throw InputError(in.file, line_of(*b.get(key)), field, "must be >= 1");
      *target = static_cast<std::uint64_t>(*v);
    }
  }
}

void read_hygiene(const toml::table& h, const ConfigFile& in, Config& config) {
  read_hygiene_section(h, in.file, in.base, config.hygiene);  // checks its own keys
}

void read_log(const toml::table& l, const ConfigFile& in, Config& config) {
  reject_unknown_keys(l, {"level"}, {in.file, "log"});
  if (auto v = toml_get<std::string>(l, "level", in.file, "log.level")) config.log.level = *v;
}

void read_events(const toml::table& e, const ConfigFile& in, Config& config) {
  read_events_section(e, in.file, in.base, config.events);  // checks its own keys
}

void read_shaping(const toml::table& s, const ConfigFile& in, Config& config) {
  reject_unknown_keys(s, {"file"}, {in.file, "shaping"});
  if (auto v = toml_get<std::string>(s, "file", in.file, "shaping.file")) config.shaping = load_shaping(in.resolve(*v));
}

using SectionReader = void (*)(const toml::table&, const ConfigFile&, Config&);
// The sections of kurier.toml and their readers, in the order problems are reported.
const std::vector<std::pair<std::string_view, SectionReader>> kReaders = {
    {"queue", read_queue},   {"dns", read_dns},         {"smtp", read_smtp},     {"mta_sts", read_mta_sts},
    {"verp", read_verp},     {"dkim", read_dkim},       {"http", read_http},     {"bounce", read_bounce},
    {"engine", read_engine}, {"hygiene", read_hygiene}, {"log", read_log},       {"shaping", read_shaping},
    {"breaker", read_breaker}, {"events", read_events}};

std::vector<std::string_view> section_names() {
  std::vector<std::string_view> names;
  for (const auto& reader : kReaders) names.push_back(reader.first);
  names.push_back("webhook");  // an array of tables: read_webhook_section()
  return names;
}

}  // namespace

std::optional<std::chrono::seconds> parse_duration(const std::string& text) {
  // A leading digit: std::stoll would accept " 5m" and "-1m".
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return std::nullopt;
  std::size_t pos = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &pos);
  } catch (...) {
    return std::nullopt;
  }
  const std::string unit = text.substr(pos);
  if (unit == "s") return std::chrono::seconds(value);
  if (unit == "m") return std::chrono::minutes(value);
  if (unit == "h") return std::chrono::hours(value);
  if (unit == "d") return std::chrono::hours(24 * value);
  return std::nullopt;
}

Config load_config(const std::optional<fs::path>& path_arg) {
  Config config;
  config.smtp.helo = host_name();
  fs::path path;
  if (path_arg) {
    path = *path_arg;
    if (!fs::exists(path)) throw InputError(path.string(), 0, "", "cannot read file");
  } else if (fs::exists("kurier.toml")) {
    path = "kurier.toml";
  } else {
    return config;
  }
  config.file = path;
  const ConfigFile in{path.string(), path.has_parent_path() ? path.parent_path() : fs::path(".")};
  const toml::table root = parse_toml(path);
  reject_unknown_keys(root, section_names(), {in.file, ""});
  for (const auto& [name, read] : kReaders)
    if (const toml::table* table = section(root, name, in)) read(*table, in, config);
  if (const toml::node* hooks = root.get("webhook")) config.webhooks = read_webhook_section(*hooks, in.file, config.events);
  return config;
}

const bounce::Rules& bounce_rules_or_builtin(const Config& config) {
  return config.bounce.rules ? *config.bounce.rules : bounce::Rules::builtin();
}

const std::string& required_verp_secret(const Config& config) {
  if (config.verp.secret.empty())
    throw InputError(config.file.empty() ? "kurier.toml" : config.file.string(), 0, "verp.secret",
                     "is required (the HMAC key of VERP return paths and tokens)");
  return config.verp.secret;
}

}  // namespace kurier::engine
