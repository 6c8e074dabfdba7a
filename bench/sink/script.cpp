// Script parsing (toml++), reply templates and rule matching for kurier-sink.
// Parsing runs once on the main thread; RuleMatcher::find runs on every worker thread.
// Bad scripts throw ScriptError with file, line and key; matching cannot fail.
#include "bench/sink/script.h"

#include <cctype>
#include <fstream>
#include <optional>
#include <sstream>

#include <arpa/inet.h>

#include <toml++/toml.h>

#include "common/text.h"

namespace kurier::sink {
namespace {

// A reply delay beyond this is certainly a typo (ms vs s) and would stall tests.
constexpr std::int64_t kMaxReplyDelayMs = 600'000;

using text::lower_char;

[[noreturn]] void fail(const std::string& origin, const toml::node* node, const std::string& what) {
  std::ostringstream msg;
  msg << origin;
  if (node && node->source().begin.line > 0) msg << ':' << node->source().begin.line;
  msg << ": " << what;
  throw ScriptError(msg.str());
}

std::optional<Stage> stage_from_name(std::string_view name) {
  if (name == "connect") return Stage::kConnect;
  if (name == "ehlo") return Stage::kEhlo;
  if (name == "mail") return Stage::kMail;
  if (name == "rcpt") return Stage::kRcpt;
  if (name == "data") return Stage::kData;
  if (name == "message") return Stage::kMessage;
  if (name == "content") return Stage::kContent;
  if (name == "starttls") return Stage::kStarttls;
  return std::nullopt;
}

std::optional<Fault> fault_from_name(std::string_view name) {
  if (name == "drop") return Fault::kDrop;
  if (name == "reset") return Fault::kReset;
  if (name == "hang") return Fault::kHang;
  if (name == "garbage") return Fault::kGarbage;
  if (name == "long_line") return Fault::kLongLine;
  if (name == "endless") return Fault::kEndless;
  if (name == "bad_tls") return Fault::kBadTls;
  return std::nullopt;
}

// Typed accessors that name the key and line when the type is wrong.
class Reader {
 public:
  explicit Reader(const std::string& origin) : origin_(origin) {}

  bool boolean(const toml::node& node, std::string_view key) const {
    if (auto v = node.value<bool>()) return *v;
    fail(origin_, &node, std::string(key) + ": expected true or false");
  }
  std::string string(const toml::node& node, std::string_view key) const {
    if (auto v = node.value<std::string>()) return *v;
    fail(origin_, &node, std::string(key) + ": expected a string");
  }
  std::int64_t integer(const toml::node& node, std::string_view key, std::int64_t max) const {
    auto v = node.value<std::int64_t>();
    if (!v || !node.is_integer()) fail(origin_, &node, std::string(key) + ": expected an integer");
    if (*v < 0 || *v > max)
      fail(origin_, &node, std::string(key) + ": must be between 0 and " + std::to_string(max));
    return *v;
  }
  ReplyTemplate reply(const toml::node& node, std::string_view key) const {
    try {
      return ReplyTemplate(string(node, key));
    } catch (const ScriptError& e) {
      fail(origin_, &node, std::string(key) + ": " + e.what());
    }
  }

 private:
  const std::string& origin_;
};

Rule parse_rule(const toml::table& table, std::size_t index, const Reader& read, const std::string& origin) {
  Rule rule;
  rule.index = index;
  bool has_stage = false;
  for (auto&& [key, node] : table) {
    const std::string_view name = key.str();
    if (name == "stage") {
      auto stage = stage_from_name(read.string(node, name));
      if (!stage) fail(origin, &node, "stage: expected connect, ehlo, mail, rcpt, data, message, content or starttls");
      rule.stage = *stage;
      has_stage = true;
    } else if (name == "match") {
      rule.match = read.string(node, name);
    } else if (name == "address") {
      rule.address = normalize_ip(read.string(node, name));
      if (rule.address.empty()) fail(origin, &node, "address: not an IP address");
    } else if (name == "reply") {
      rule.reply = read.reply(node, name);
    } else if (name == "times") {
      rule.times = static_cast<std::uint32_t>(read.integer(node, name, UINT32_MAX));
    } else if (name == "close") {
      rule.close = read.boolean(node, name);
    } else if (name == "fault") {
      auto fault = fault_from_name(read.string(node, name));
      if (!fault) fail(origin, &node, "fault: expected drop, reset, hang, garbage, long_line, endless or bad_tls");
      rule.fault = *fault;
    } else {
      fail(origin, &node, "unknown key in [[rule]]: " + std::string(name));
    }
  }
  if (!has_stage) fail(origin, &table, "[[rule]] without stage");
  if (rule.reply.empty() && rule.fault == Fault::kNone) fail(origin, &table, "[[rule]] without reply or fault");
  // Content arrives after the 354: there is no reply to replace, only a connection to break.
  if (rule.stage == Stage::kContent && rule.fault != Fault::kDrop && rule.fault != Fault::kReset &&
      rule.fault != Fault::kHang)
    fail(origin, &table, "stage content: needs fault drop, reset or hang");
  if (rule.fault == Fault::kBadTls && rule.stage != Stage::kStarttls)
    fail(origin, &table, "fault bad_tls: only at stage starttls");
  if (rule.fault == Fault::kBadTls && !rule.reply.empty() && rule.reply.code() != 220)
    fail(origin, &table, "fault bad_tls: the reply must be a 220");
  rule.match_full_address = rule.match.find('@') != std::string::npos;
  return rule;
}

}  // namespace

ReplyTemplate::ReplyTemplate(std::string_view text) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (text.size() < 3 || !digit(text[0]) || !digit(text[1]) || !digit(text[2]) || text[0] < '2' ||
      text[0] > '5' || (text.size() > 3 && text[3] != ' ' && text[3] != '-' && text[3] != '\n'))
    throw ScriptError("reply must start with a code 200..599: \"" + std::string(text) + "\"");
  code_ = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
  const std::string_view code_text = text.substr(0, 3);
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Drop a repeated code ("550-..." / "550 ..." / "550"); any other text is kept as is.
    if (line.substr(0, 3) == code_text && (line.size() == 3 || line[3] == ' ' || line[3] == '-'))
      line.remove_prefix(line.size() == 3 ? 3 : 4);
    lines_.emplace_back(line);
  }
}

void ReplyTemplate::render(std::string& out, const Substitutions& values) const {
  const std::string code = std::to_string(code_);
  for (std::size_t i = 0; i < lines_.size(); ++i) {
    out += code;
    out += i + 1 < lines_.size() ? '-' : ' ';
    std::string_view line = lines_[i];
    while (!line.empty()) {
      auto open = line.find('{');
      out.append(line.substr(0, open));
      if (open == std::string_view::npos) break;
      line.remove_prefix(open);
      if (line.starts_with("{rcpt}")) {
        out += values.rcpt;
        line.remove_prefix(6);
      } else if (line.starts_with("{sender}")) {
        out += values.sender;
        line.remove_prefix(8);
      } else if (line.starts_with("{host}")) {
        out += values.host;
        line.remove_prefix(6);
      } else {
        out += '{';
        line.remove_prefix(1);
      }
    }
    out += "\r\n";
  }
}

Script load_script(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ScriptError(path.string() + ": cannot read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_script(text.str(), path.string());
}

Script parse_script(std::string_view text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ':' << e.source().begin.line << ": " << e.description();
    throw ScriptError(msg.str());
  }
  Script script;
  const Reader read(origin);
  for (auto&& [key, node] : root) {
    const std::string_view name = key.str();
    if (name == "greeting") {
      script.greeting = read.reply(node, name);
    } else if (name == "reply_delay_ms") {
      script.reply_delay = std::chrono::milliseconds(read.integer(node, name, kMaxReplyDelayMs));
    } else if (name == "max_messages_per_connection") {
      script.max_messages_per_connection = static_cast<std::uint32_t>(read.integer(node, name, UINT32_MAX));
    } else if (name == "max_messages_per_second") {
      script.max_messages_per_second = static_cast<std::uint32_t>(read.integer(node, name, UINT32_MAX));
    } else if (name == "max_connections") {
      script.max_connections = static_cast<std::uint32_t>(read.integer(node, name, UINT32_MAX));
    } else if (name == "pipelining") {
      script.pipelining = read.boolean(node, name);
    } else if (name == "eight_bit_mime") {
      script.eight_bit_mime = read.boolean(node, name);
    } else if (name == "smtputf8") {
      script.smtputf8 = read.boolean(node, name);
    } else if (name == "size_limit") {
      script.size_limit = static_cast<std::uint64_t>(read.integer(node, name, INT64_MAX));
    } else if (name == "tls") {
      script.tls = read.boolean(node, name);
    } else if (name == "rule") {
      const toml::array* rules = node.as_array();
      if (!rules) fail(origin, &node, "rule: expected [[rule]] tables");
      for (const toml::node& item : *rules) {
        const toml::table* table = item.as_table();
        if (!table) fail(origin, &item, "rule: expected [[rule]] tables");
        script.rules.push_back(parse_rule(*table, script.rules.size(), read, origin));
      }
    } else {
      fail(origin, &node, "unknown key: " + std::string(name));
    }
  }
  return script;
}

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative matcher: on a mismatch, retry from the last '*' consuming one more
  // character. Linear in practice, no recursion on hostile patterns.
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || lower_char(pattern[p]) == lower_char(text[t])) && pattern[p] != '*') {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string normalize_ip(std::string_view text) {
  const std::string input(text);
  unsigned char bytes[sizeof(in6_addr)];
  char out[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, input.c_str(), bytes) == 1 && inet_ntop(family, bytes, out, sizeof out)) return out;
  }
  return {};
}

std::string_view local_part(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? address : address.substr(0, at);
}

RuleMatcher::RuleMatcher(const Script& script) : counts_(script.rules.size()) {
  for (const Rule& rule : script.rules) by_stage_[static_cast<std::size_t>(rule.stage)].push_back(&rule);
}

bool RuleMatcher::take(const Rule& rule, std::string_view key) {
  if (rule.times == 0) return true;
  std::string lowered = text::lower_ascii(key);
  std::lock_guard lock(mutex_);
  std::uint32_t& used = counts_[rule.index][std::move(lowered)];
  if (used >= rule.times) return false;
  ++used;
  return true;
}

const Rule* RuleMatcher::find(Stage stage, std::string_view listen_address, std::span<const std::string_view> subjects,
                              std::string_view* matched) {
  const bool has_subject =
      stage == Stage::kMail || stage == Stage::kRcpt || stage == Stage::kMessage || stage == Stage::kContent;
  for (const Rule* rule : by_stage_[static_cast<std::size_t>(stage)]) {
    if (!rule->address.empty() && rule->address != listen_address) continue;
    if (!has_subject) {
      if (take(*rule, {})) return rule;
      continue;
    }
    for (std::string_view subject : subjects) {
      std::string_view target = subject;
      if (stage != Stage::kMail && !rule->match_full_address) target = local_part(subject);
      if (!glob_match(rule->match, target)) continue;
      if (!take(*rule, subject)) continue;
      if (matched) *matched = subject;
      return rule;
    }
  }
  return nullptr;
}

}  // namespace kurier::sink
