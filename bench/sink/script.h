// kurier-sink's behaviour script: the TOML file given with --script.
//
// Contract: load_script() parses and validates the whole file up front and throws
// ScriptError (file, key and reason in the message) on anything it does not
// understand, so a typo in a test script fails loudly at start-up instead of
// silently changing the sink's behaviour. A default-constructed Script is the
// behaviour without --script: accept everything, advertise every extension.
//
// RuleMatcher answers "which rule applies?" for a stage and is thread-safe: the
// per-rule `times` counters are shared by all connections and threads (a
// greylisting rule must see the retry, which arrives on another connection).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kurier::sink {

class ScriptError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The point of the dialogue a rule replaces the sink's own reply at.
enum class Stage {
  kConnect,  // the greeting
  kEhlo,     // reply to EHLO / HELO
  kMail,     // reply to MAIL FROM; matched against the sender address
  kRcpt,     // reply to RCPT TO; matched against the recipient
  kData,     // reply to DATA (a 354 lets the content follow, anything else refuses it)
  kMessage,  // reply after the content; matched against every accepted recipient
  kContent,  // while the content arrives (first line); matched like kMessage; faults only
  kStarttls,  // reply to STARTTLS (a 220 starts TLS, anything else refuses it)
};
inline constexpr std::size_t kStageCount = 8;

// A misbehaving peer, for robustness tests: what the sink does instead of (or after)
// the rule's reply. The rule's `reply` is optional with a fault.
enum class Fault {
  kNone,
  kDrop,        // no reply: close the connection (FIN) at once
  kReset,       // the reply (if any), then reset the connection (RST)
  kHang,        // no reply: keep the connection open, read and discard until the peer leaves
  kGarbage,     // non-SMTP bytes (an HTTP response with a NUL) instead of the reply
  kLongLine,    // a 1 MiB reply line ("NNN xxx...", code from the reply, default 250)
  kEndless,     // an endless multi-line reply ("NNN-..." without a last line)
  kBadTls,      // starttls stage: the 220 (or the reply), then bytes that are not TLS, close
};

// Values substituted into reply templates: {rcpt}, {sender}, {host}.
struct Substitutions {
  std::string_view rcpt;
  std::string_view sender;
  std::string_view host;
};

// A reply as written in the script: "550 5.1.1 <{rcpt}>: ..." with optional further
// lines separated by "\n" (each may repeat the code, "550-..." / "550 ...", or not).
class ReplyTemplate {
 public:
  ReplyTemplate() = default;
  // Throws ScriptError unless `text` starts with a reply code 200..599.
  explicit ReplyTemplate(std::string_view text);

  int code() const { return code_; }
  bool empty() const { return lines_.empty(); }
  // Appends the reply with CRLF line ends and correct continuation marks to `out`.
  void render(std::string& out, const Substitutions& values) const;

 private:
  int code_ = 0;
  std::vector<std::string> lines_;  // text after "NNN " / "NNN-", unsubstituted
};

struct Rule {
  Stage stage = Stage::kRcpt;
  std::string match = "*";    // glob, case-insensitive
  bool match_full_address = false;  // pattern contains '@': match the whole address
  std::string address;        // local listen address filter; empty = any
  ReplyTemplate reply;
  std::uint32_t times = 0;    // 0 = always; else only the first N matches per key
  bool close = false;         // close the connection after the reply
  Fault fault = Fault::kNone;
  std::size_t index = 0;      // position in the file, for the `times` counters
};

struct Script {
  ReplyTemplate greeting{"220 kurier-sink ESMTP"};
  std::chrono::milliseconds reply_delay{0};
  std::uint32_t max_messages_per_connection = 0;  // 0 = unlimited
  std::uint32_t max_connections = 0;              // per listen address; 0 = unlimited
  // Per listen address: a MAIL beyond this many in one wall-clock second gets
  // "421 4.7.0 ... rate limit exceeded" and the connection closes; 0 = unlimited.
  std::uint32_t max_messages_per_second = 0;
  bool pipelining = true;
  bool eight_bit_mime = true;
  bool smtputf8 = true;
  std::uint64_t size_limit = 0;  // 0 = no SIZE limit (SIZE advertised without a number)
  bool tls = false;
  std::vector<Rule> rules;  // file order
};

// Parses the script file. Throws ScriptError.
Script load_script(const std::filesystem::path& path);
// Parses script text (tests, and load_script); `origin` names it in errors.
Script parse_script(std::string_view text, const std::string& origin);

// Glob with '*' (any run) and '?' (one character), ASCII case-insensitive.
bool glob_match(std::string_view pattern, std::string_view text);

// The canonical text of an IPv4 or IPv6 address ("::1", "127.0.0.2"); empty if invalid.
std::string normalize_ip(std::string_view text);

// The local part of an address: everything before the last '@' (the whole string if none).
std::string_view local_part(std::string_view address);

class RuleMatcher {
 public:
  explicit RuleMatcher(const Script& script);  // keeps a reference: the script outlives it

  // First rule (file order) for `stage` whose address filter accepts `listen_address`
  // and whose pattern matches one of `subjects` (full addresses for rcpt/message/content, the
  // sender for mail; ignored for the other stages). On a match, `*matched` (if given)
  // is set to the subject that matched. Returns nullptr if no rule applies.
  const Rule* find(Stage stage, std::string_view listen_address, std::span<const std::string_view> subjects,
                   std::string_view* matched = nullptr);
  const Rule* find(Stage stage, std::string_view listen_address, std::string_view subject) {
    return find(stage, listen_address, std::span<const std::string_view>(&subject, 1));
  }
  bool has_rules(Stage stage) const { return !by_stage_[static_cast<std::size_t>(stage)].empty(); }

 private:
  // True if the rule may still fire for `key`, counting this use (rules with `times`).
  bool take(const Rule& rule, std::string_view key);

  std::vector<const Rule*> by_stage_[kStageCount];
  std::mutex mutex_;  // guards counts_
  std::vector<std::unordered_map<std::string, std::uint32_t>> counts_;  // per rule index
};

}  // namespace kurier::sink
