// Loads kurier.toml with toml++ (shaping.toml: engine/delivery/shaping/shaping.cpp).
// Runs once at start-up on the main thread; every problem is an InputError with
// file, line and key, so the CLI exits 2 with a message a user can act on.
#include "engine/core/config.h"

#include <unistd.h>

#include <cctype>

#include <toml++/toml.h>

#include "bounce/bounce.h"
#include "common/text.h"
#include "engine/intake/hygiene/hygiene_config.h"
#include "engine/core/input_error.h"
#include "engine/delivery/tls_policy.h"

namespace kurier::engine {
namespace fs = std::filesystem;

namespace {

std::size_t line_of(const toml::node& node) { return node.source().begin.line; }

template <typename T>
std::optional<T> get(const toml::table& table, std::string_view key, const std::string& file,
                     const std::string& qualified) {
  const toml::node* node = table.get(key);
  if (!node) return std::nullopt;
  if (auto value = node->value<T>()) return *value;
  throw InputError(file, line_of(*node), qualified, "has the wrong type");
}

std::chrono::milliseconds get_ms(const toml::table& table, std::string_view key, const std::string& file,
                                 const std::string& qualified, std::chrono::milliseconds fallback) {
  auto v = get<std::int64_t>(table, key, file, qualified);
  if (!v) return fallback;
  if (*v <= 0) throw InputError(file, line_of(*table.get(key)), qualified, "must be positive");
  return std::chrono::milliseconds(*v);
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
  config.helo = host_name();
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
  const std::string file = path.string();
  const fs::path base = path.has_parent_path() ? path.parent_path() : fs::path(".");
  auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? fs::path(p) : base / p; };

  toml::table root = parse_toml(path);

  if (const toml::table* q = root["queue"].as_table())
    if (auto v = get<std::string>(*q, "path", file, "queue.path")) config.queue_path = resolve(*v);

  if (const toml::table* d = root["dns"].as_table()) {
    if (const toml::node* node = d->get("servers")) {
      const toml::array* array = node->as_array();
      if (!array) throw InputError(file, line_of(*node), "dns.servers", "must be a list of \"host:port\"");
      for (const auto& item : *array) {
        auto text = item.value<std::string>();
        if (!text || text->empty()) throw InputError(file, line_of(item), "dns.servers", "must be a list of \"host:port\"");
        config.dns_servers.push_back(*text);
      }
    }
    config.dns_timeout = get_ms(*d, "timeout_ms", file, "dns.timeout_ms", config.dns_timeout);
  }

  if (const toml::table* s = root["smtp"].as_table()) {
    if (auto v = get<std::string>(*s, "helo", file, "smtp.helo")) config.helo = *v;
    if (auto v = get<std::int64_t>(*s, "port", file, "smtp.port")) {
      if (*v < 1 || *v > 65535) throw InputError(file, line_of(*s->get("port")), "smtp.port", "must be 1..65535");
      config.smtp_port = static_cast<std::uint16_t>(*v);
    }
    if (auto v = get<std::string>(*s, "tls", file, "smtp.tls")) {
      // "disabled": an alias kept for configurations written before "none".
      auto policy = *v == "disabled" ? smtp::TlsPolicy::disabled : tls_policy_from_string(*v);
      if (!policy) throw InputError(file, line_of(*s->get("tls")), "smtp.tls", "must be opportunistic, required or none");
      config.tls = *policy;
    }
    if (const toml::table* t = (*s)["timeouts"].as_table()) {
      auto& to = config.timeouts;
      to.connect = get_ms(*t, "connect_ms", file, "smtp.timeouts.connect_ms", to.connect);
      to.greeting = get_ms(*t, "greeting_ms", file, "smtp.timeouts.greeting_ms", to.greeting);
      to.ehlo = get_ms(*t, "ehlo_ms", file, "smtp.timeouts.ehlo_ms", to.ehlo);
      to.starttls = get_ms(*t, "starttls_ms", file, "smtp.timeouts.starttls_ms", to.starttls);
      to.mail = get_ms(*t, "mail_ms", file, "smtp.timeouts.mail_ms", to.mail);
      to.rcpt = get_ms(*t, "rcpt_ms", file, "smtp.timeouts.rcpt_ms", to.rcpt);
      to.data_init = get_ms(*t, "data_init_ms", file, "smtp.timeouts.data_init_ms", to.data_init);
      to.data_block = get_ms(*t, "data_block_ms", file, "smtp.timeouts.data_block_ms", to.data_block);
      to.data_term = get_ms(*t, "data_term_ms", file, "smtp.timeouts.data_term_ms", to.data_term);
      to.rset = get_ms(*t, "rset_ms", file, "smtp.timeouts.rset_ms", to.rset);
      to.quit = get_ms(*t, "quit_ms", file, "smtp.timeouts.quit_ms", to.quit);
    }
  }

  if (const toml::node* node = root.get("mta_sts")) {
    const toml::table* m = node->as_table();
    if (!m) throw InputError(file, line_of(*node), "mta_sts", "must be a table ([mta_sts])");
    auto& o = config.mta_sts;
    if (auto v = get<bool>(*m, "enabled", file, "mta_sts.enabled")) o.enabled = *v;
    if (auto v = get<std::int64_t>(*m, "port", file, "mta_sts.port")) {
      if (*v < 1 || *v > 65535) throw InputError(file, line_of(*m->get("port")), "mta_sts.port", "must be 1..65535");
      o.port = static_cast<std::uint16_t>(*v);
    }
    if (auto v = get<std::string>(*m, "ca_file", file, "mta_sts.ca_file")) {
      o.ca_file = resolve(*v).string();
      if (!fs::exists(o.ca_file)) throw InputError(file, line_of(*m->get("ca_file")), "mta_sts.ca_file", "file not found: " + o.ca_file);
    }
    o.timeout = get_ms(*m, "timeout_ms", file, "mta_sts.timeout_ms", o.timeout);
  }

  if (const toml::table* v = root["verp"].as_table())
    if (auto secret = get<std::string>(*v, "secret", file, "verp.secret")) config.verp_secret = *secret;

  if (const toml::table* d = root["dkim"].as_table()) {
    if (const toml::node* node = d->get("key")) {
      const toml::array* keys = node->as_array();
      if (!keys) throw InputError(file, line_of(*node), "dkim.key", "must be an array of tables ([[dkim.key]])");
      for (const auto& item : *keys) {
        const toml::table* t = item.as_table();
        if (!t) throw InputError(file, line_of(item), "dkim.key", "must be a table with domain, selector, key");
        DkimKey key;
        auto need = [&](std::string_view name) {
          auto v = get<std::string>(*t, name, file, "dkim.key." + std::string(name));
          if (!v || v->empty()) throw InputError(file, line_of(item), "dkim.key." + std::string(name), "is required");
          return *v;
        };
        key.domain = text::lower_ascii(need("domain"));
        key.selector = need("selector");
        key.key = resolve(need("key"));
        config.dkim_keys.push_back(std::move(key));
      }
    }
  }

  if (const toml::table* h = root["http"].as_table()) {
    if (auto v = get<std::string>(*h, "listen", file, "http.listen")) config.http_listen = *v;
    if (auto v = get<std::string>(*h, "token", file, "http.token")) config.http_token = *v;
  }
  if (const toml::table* b = root["bounce"].as_table()) {
    if (auto v = get<std::string>(*b, "listen", file, "bounce.listen")) config.bounce_listen = *v;
    if (auto v = get<std::int64_t>(*b, "soft_limit", file, "bounce.soft_limit")) {
      if (*v < 0 || *v > 1000) throw InputError(file, line_of(*b->get("soft_limit")), "bounce.soft_limit", "must be 0..1000");
      config.bounce_soft_limit = static_cast<std::uint32_t>(*v);
    }
    if (const toml::node* node = b->get("domains")) {
      const toml::array* array = node->as_array();
      if (!array) throw InputError(file, line_of(*node), "bounce.domains", "must be a list of domains");
      for (const auto& item : *array) {
        auto text = item.value<std::string>();
        if (!text || text->empty()) throw InputError(file, line_of(item), "bounce.domains", "must be a list of domains");
        config.bounce_domains.push_back(text::lower_ascii(*text));
      }
    }
    if (auto v = get<std::string>(*b, "rules", file, "bounce.rules")) {
      config.bounce_rules_file = resolve(*v);
      try {
        config.bounce_rules = std::make_shared<const bounce::Rules>(bounce::Rules::load(config.bounce_rules_file));
      } catch (const bounce::RulesError& e) {
        // The rules file's own location: that is where the mistake is.
        throw InputError(e.file(), e.line(), e.field(), e.message());
      }
    }
  }

  if (const toml::table* e = root["engine"].as_table()) {
    if (auto v = get<std::int64_t>(*e, "workers", file, "engine.workers")) {
      if (*v < 0 || *v > 64) throw InputError(file, line_of(*e->get("workers")), "engine.workers", "must be 0..64");
      config.workers = static_cast<int>(*v);
    }
    if (auto v = get<std::int64_t>(*e, "window", file, "engine.window")) {
      if (*v < 1) throw InputError(file, line_of(*e->get("window")), "engine.window", "must be >= 1");
      config.window = static_cast<std::size_t>(*v);
    }
  }
  if (const toml::node* h = root.get("hygiene")) {
    if (!h->as_table()) throw InputError(file, line_of(*h), "hygiene", "must be a table ([hygiene])");
    read_hygiene_section(*h->as_table(), file, base, config.hygiene);
  }
  if (const toml::table* l = root["log"].as_table())
    if (auto v = get<std::string>(*l, "level", file, "log.level")) config.log_level = *v;

  if (const toml::table* s = root["shaping"].as_table())
    if (auto v = get<std::string>(*s, "file", file, "shaping.file")) config.shaping = load_shaping(resolve(*v));

  return config;
}

const bounce::Rules& bounce_rules_or_builtin(const Config& config) {
  return config.bounce_rules ? *config.bounce_rules : bounce::Rules::builtin();
}

const std::string& required_verp_secret(const Config& config) {
  if (config.verp_secret.empty())
    throw InputError(config.file.empty() ? "kurier.toml" : config.file.string(), 0, "verp.secret",
                     "is required (the HMAC key of VERP return paths and tokens)");
  return config.verp_secret;
}

}  // namespace kurier::engine
