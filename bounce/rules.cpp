// The data-driven classifier: loads the TOML rule set (built-in text from
// data/bounce-rules.toml, plus an optional ops file) once, compiles its regexes, and
// answers classify() from any thread without locking (the rule set is immutable).
// A bad rules file throws RulesError naming the file, line and field.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "bounce/bounce.h"
#include "bounce/text.h"

namespace kurier::bounce {
namespace detail {
extern const std::string_view kDefaultRules;
}  // namespace detail

namespace {

enum class HardWhen { never, always, permanent };

struct ReasonInfo {
  std::string category;
  HardWhen hard = HardWhen::never;
};

struct StatusEntry {
  std::string reason;
  bool generic = false;  // vague code (e.g. 5.7.1): weak text patterns may refine it
};

struct Pattern {
  std::string reason;
  std::vector<std::string> contains;  // lower case
  std::vector<std::regex> regexes;
  bool weak = false;

  bool matches(const std::string& lowered) const {
    for (const auto& needle : contains)
      if (lowered.find(needle) != std::string::npos) return true;
    for (const auto& re : regexes)
      if (std::regex_search(lowered, re)) return true;
    return false;
  }
};

std::string format_error(const std::string& file, std::size_t line, const std::string& field,
                         const std::string& message) {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!field.empty()) out += "field '" + field + "': ";
  return out + message;
}

std::size_t line_of(const toml::node& node) { return node.source().begin.line; }

bool valid_status_key(std::string_view key) {
  // "S.D" or "C.S.D" with 1-3 digit parts.
  int parts = 1;
  std::size_t digits = 0;
  for (char c : key) {
    if (c == '.') {
      if (digits == 0) return false;
      ++parts;
      digits = 0;
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return digits > 0 && (parts == 2 || parts == 3);
}

}  // namespace

RulesError::RulesError(std::string file, std::size_t line, std::string field, const std::string& message)
    : std::runtime_error(format_error(file, line, field, message)),
      message_(message),
      file_(std::move(file)),
      line_(line),
      field_(std::move(field)) {}

struct Rules::Impl {
  std::map<std::string, ReasonInfo, std::less<>> reasons;
  std::map<std::string, StatusEntry, std::less<>> status;
  std::map<int, std::string> reply_code;
  std::vector<Pattern> patterns;

  const StatusEntry* find_status(std::string_view enhanced) const;
  std::string decide(int code, std::string_view enhanced, const std::string& lowered) const;
  Diagnosis verdict(const std::string& reason, bool permanent) const;
};

namespace {

// Reads one rules document into `impl`. Patterns of this document go before the
// patterns already present (an ops file is consulted first); keyed entries replace.
class Loader {
 public:
  Loader(Rules::Impl& impl, std::string origin) : impl_(impl), origin_(std::move(origin)) {}

  void load(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(origin_));
    } catch (const toml::parse_error& e) {
      throw RulesError(origin_, e.source().begin.line, "", std::string(e.description()));
    }
    for (const auto& [key, node] : root) {
      const std::string name(key.str());
      if (name == "reasons") {
        read_reasons(node);
      } else if (name == "status") {
        read_status(node);
      } else if (name == "reply_code") {
        read_reply_codes(node);
      } else if (name == "pattern") {
        continue;  // after the reasons, which patterns refer to
      } else {
        fail(node, name, "unknown section (expected reasons, status, reply_code, pattern)");
      }
    }
    if (const toml::node* node = root.get("pattern")) read_patterns(*node);
    // Entries read before their reason was known are checked now.
    for (const auto& [field, check] : pending_reasons_) require_reason(check.first, field, check.second);
  }

 private:
  [[noreturn]] void fail(const toml::node& node, const std::string& field, const std::string& message) const {
    throw RulesError(origin_, line_of(node), field, message);
  }

  void require_reason(const std::string& reason, const std::string& field, std::size_t line) const {
    if (!impl_.reasons.contains(reason))
      throw RulesError(origin_, line, field, "unknown reason \"" + reason + "\" (not in [reasons])");
  }

  void read_reasons(const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) fail(node, "reasons", "must be a table");
    for (const auto& [key, value] : *table) {
      const std::string field = "reasons." + std::string(key.str());
      const toml::table* entry = value.as_table();
      if (entry == nullptr) fail(value, field, "must be a table { category = ..., hard = ... }");
      ReasonInfo info;
      for (const auto& [k, v] : *entry) {
        if (k.str() == "category") {
          const auto category = v.value<std::string>();
          if (!category || (*category != "hard" && *category != "soft" && *category != "block" && *category != "other"))
            fail(v, field + ".category", "must be \"hard\", \"soft\", \"block\" or \"other\"");
          info.category = *category;
        } else if (k.str() == "hard") {
          if (const auto flag = v.value_exact<bool>()) {
            info.hard = *flag ? HardWhen::always : HardWhen::never;
          } else if (v.value<std::string>() == std::optional<std::string>("permanent")) {
            info.hard = HardWhen::permanent;
          } else {
            fail(v, field + ".hard", "must be true, false or \"permanent\"");
          }
        } else {
          fail(v, field + "." + std::string(k.str()), "unknown key (expected category, hard)");
        }
      }
      if (info.category.empty()) fail(value, field + ".category", "missing");
      impl_.reasons[std::string(key.str())] = info;
    }
  }

  void read_status(const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) fail(node, "status", "must be a table");
    for (const auto& [key, value] : *table) {
      const std::string name(key.str());
      const std::string field = "status." + name;
      if (!valid_status_key(name)) fail(value, field, "key must be \"subject.detail\" or \"class.subject.detail\"");
      StatusEntry entry;
      if (const auto reason = value.value_exact<std::string>()) {
        entry.reason = *reason;
      } else if (const toml::table* t = value.as_table()) {
        for (const auto& [k, v] : *t) {
          if (k.str() == "reason" && v.value_exact<std::string>()) {
            entry.reason = *v.value_exact<std::string>();
          } else if (k.str() == "generic" && v.value_exact<bool>()) {
            entry.generic = *v.value_exact<bool>();
          } else {
            fail(v, field + "." + std::string(k.str()), "unknown key or wrong type (expected reason = string, generic = bool)");
          }
        }
        if (entry.reason.empty()) fail(value, field + ".reason", "missing");
      } else {
        fail(value, field, "must be a reason string or { reason = ..., generic = ... }");
      }
      pending_reasons_.emplace_back(field, std::make_pair(entry.reason, line_of(value)));
      impl_.status[name] = std::move(entry);
    }
  }

  void read_reply_codes(const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) fail(node, "reply_code", "must be a table");
    for (const auto& [key, value] : *table) {
      const std::string name(key.str());
      const std::string field = "reply_code." + name;
      if (name.size() != 3 || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          name[0] < '2' || name[0] > '5')
        fail(value, field, "key must be a 3-digit reply code");
      const auto reason = value.value_exact<std::string>();
      if (!reason) fail(value, field, "must be a reason string");
      pending_reasons_.emplace_back(field, std::make_pair(*reason, line_of(value)));
      impl_.reply_code[std::stoi(name)] = *reason;
    }
  }

  std::vector<std::string> read_strings(const toml::node& node, const std::string& field) {
    const toml::array* array = node.as_array();
    if (array == nullptr) fail(node, field, "must be an array of strings");
    std::vector<std::string> out;
    for (const auto& item : *array) {
      const auto s = item.value_exact<std::string>();
      if (!s || s->empty()) fail(item, field, "must be an array of non-empty strings");
      out.push_back(*s);
    }
    return out;
  }

  void read_patterns(const toml::node& node) {
    const toml::array* array = node.as_array();
    if (array == nullptr) fail(node, "pattern", "must be an array of tables ([[pattern]])");
    std::vector<Pattern> patterns;
    std::size_t index = 0;
    for (const auto& item : *array) {
      const std::string field = "pattern[" + std::to_string(index++) + "]";
      const toml::table* table = item.as_table();
      if (table == nullptr) fail(item, field, "must be a table");
      Pattern pattern;
      for (const auto& [k, v] : *table) {
        const std::string key(k.str());
        if (key == "reason") {
          const auto reason = v.value_exact<std::string>();
          if (!reason) fail(v, field + ".reason", "must be a string");
          require_reason(*reason, field + ".reason", line_of(v));
          pattern.reason = *reason;
        } else if (key == "contains") {
          for (auto& s : read_strings(v, field + ".contains")) pattern.contains.push_back(lower_ascii(s));
        } else if (key == "regex") {
          for (const auto& s : read_strings(v, field + ".regex")) {
            try {
              pattern.regexes.emplace_back(s, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
            } catch (const std::regex_error& e) {
              fail(v, field + ".regex", "bad regex \"" + s + "\": " + e.what());
            }
          }
        } else if (key == "weak") {
          const auto weak = v.value_exact<bool>();
          if (!weak) fail(v, field + ".weak", "must be true or false");
          pattern.weak = *weak;
        } else {
          fail(v, field + "." + key, "unknown key (expected reason, contains, regex, weak)");
        }
      }
      if (pattern.reason.empty()) fail(item, field + ".reason", "missing");
      if (pattern.contains.empty() && pattern.regexes.empty())
        fail(item, field, "needs `contains` or `regex`");
      patterns.push_back(std::move(pattern));
    }
    impl_.patterns.insert(impl_.patterns.begin(), std::make_move_iterator(patterns.begin()),
                          std::make_move_iterator(patterns.end()));
  }

  Rules::Impl& impl_;
  std::string origin_;
  std::vector<std::pair<std::string, std::pair<std::string, std::size_t>>> pending_reasons_;
};

// "5.1.1" -> ("1.1", class '5'); nullopt when malformed.
struct SplitStatus {
  char klass;
  std::string_view subject_detail;
};
std::optional<SplitStatus> split_status(std::string_view enhanced) {
  if (enhanced.size() < 5 || enhanced[1] != '.') return std::nullopt;
  if (enhanced[0] != '2' && enhanced[0] != '4' && enhanced[0] != '5') return std::nullopt;
  return SplitStatus{enhanced[0], enhanced.substr(2)};
}

}  // namespace

const StatusEntry* Rules::Impl::find_status(std::string_view enhanced) const {
  const auto split = split_status(enhanced);
  if (!split) return nullptr;
  if (auto it = status.find(enhanced); it != status.end()) return &it->second;
  if (auto it = status.find(split->subject_detail); it != status.end()) return &it->second;
  return nullptr;
}

std::string Rules::Impl::decide(int code, std::string_view enhanced, const std::string& lowered) const {
  if ((code >= 200 && code < 400) || (!enhanced.empty() && enhanced[0] == '2')) return "delivered";
  for (const auto& p : patterns)
    if (!p.weak && p.matches(lowered)) return p.reason;
  const StatusEntry* entry = find_status(enhanced);
  if (entry != nullptr && !entry->generic) return entry->reason;
  for (const auto& p : patterns)
    if (p.weak && p.matches(lowered)) return p.reason;
  if (entry != nullptr) return entry->reason;
  if (auto it = reply_code.find(code); it != reply_code.end()) return it->second;
  return "undefined";
}

Diagnosis Rules::Impl::verdict(const std::string& reason, bool permanent) const {
  Diagnosis v;
  v.reason = reason;
  auto it = reasons.find(reason);
  if (it == reasons.end()) {
    v.category = "other";
    return v;
  }
  v.category = it->second.category;
  v.hard = it->second.hard == HardWhen::always || (it->second.hard == HardWhen::permanent && permanent);
  // A reason that is hard only when permanent (notaccept) is soft while temporary.
  if (it->second.hard == HardWhen::permanent && !permanent && v.category == "hard") v.category = "soft";
  return v;
}

Rules::Rules(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Rules::Rules(Rules&&) noexcept = default;
Rules& Rules::operator=(Rules&&) noexcept = default;
Rules::~Rules() = default;

const Rules& Rules::builtin() {
  // A broken built-in file is a build defect: the unit tests load it, so it never ships.
  static const Rules rules = parse_text(detail::kDefaultRules, "data/bounce-rules.toml");
  return rules;
}

Rules Rules::parse_text(std::string_view toml_text, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  Loader(*impl, origin).load(toml_text);
  return Rules(std::move(impl));
}

Rules Rules::load(const std::filesystem::path& extra_file) {
  std::ifstream in(extra_file, std::ios::binary);
  if (!in) throw RulesError(extra_file.string(), 0, "", "cannot read the rules file");
  std::ostringstream text;
  text << in.rdbuf();
  auto impl = std::make_shared<Impl>(*builtin().impl_);
  Loader(*impl, extra_file.string()).load(text.str());
  return Rules(std::move(impl));
}

Diagnosis Rules::classify(int code, std::string_view enhanced, std::string_view text) const {
  const std::string lowered = normalize_reply_text(text);
  const bool permanent = (code >= 500 && code < 600) || (!enhanced.empty() && enhanced[0] == '5');
  return impl_->verdict(impl_->decide(code, enhanced, lowered), permanent);
}

Diagnosis Rules::classify_status(std::string_view status, std::string_view diagnostic) const {
  const ReplyParts parts = scan_reply(diagnostic);
  std::string_view enhanced = trim(status);
  if (!split_status(enhanced)) enhanced = {};
  // A DSN Status of the class-only "X.0.0" says less than the server's own code.
  if (!parts.enhanced.empty() &&
      (enhanced.empty() || (enhanced.substr(1) == ".0.0" && parts.enhanced[0] == enhanced[0])))
    enhanced = parts.enhanced;
  const int code = parts.code;
  const std::string lowered = normalize_reply_text(diagnostic);
  const bool permanent = (!enhanced.empty() && enhanced[0] == '5') || (code >= 500 && code < 600);
  return impl_->verdict(impl_->decide(code, enhanced, lowered), permanent);
}

Diagnosis Rules::verdict_for(std::string_view reason) const {
  return impl_->verdict(std::string(reason), true);
}

std::string_view to_string(Kind kind) {
  switch (kind) {
    case Kind::bounce: return "bounce";
    case Kind::delay: return "delay";
    case Kind::autoreply: return "autoreply";
    case Kind::feedback: return "feedback";
    case Kind::reply: return "reply";
    case Kind::unknown: return "unknown";
    case Kind::delivered: return "delivered";
  }
  return "unknown";
}

std::string_view to_string(Category category) {
  switch (category) {
    case Category::hard: return "hard";
    case Category::soft: return "soft";
    case Category::block: return "block";
    case Category::other: return "other";
    case Category::none: return "";
  }
  return "";
}

Category category_from(std::string_view text) {
  if (text.empty()) return Category::none;
  if (text == "hard") return Category::hard;
  if (text == "soft") return Category::soft;
  if (text == "block") return Category::block;
  return Category::other;
}

}  // namespace kurier::bounce
