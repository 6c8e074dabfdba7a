// kurier::bounce — one classifier for inline SMTP replies and for bounce messages, and
// the parser that turns an inbound message (RFC 3464 DSN, ARF complaint, RFC 3834
// auto-reply, non-standard NDR, human reply) into per-recipient reports.
//
// Contract: pure functions of their input; nothing here touches the network, the queue
// or the disk (except Rules::load). GMime and GLib stay inside bounce/*.cpp.
// Thread-safety: a Rules object is immutable once built, so it may be shared by any
// number of threads; Rules::builtin() is built once, on first use, thread-safely.
// parse() may be called from any thread (GMime is initialised once, on first use).
#pragma once

#include <filesystem>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::bounce {

// What a received message is. `bounce`: a permanent failure notice (DSN Action: failed,
// or an NDR); `delay`: a warning that delivery is still being retried (Action: delayed);
// `delivered`: a success DSN (Action: delivered/relayed/expanded) — no state change;
// `reply` is a human answer; `unknown` is anything else (e.g. spam to the bounce
// address). Only bounce and feedback may change a recipient's state.
enum class Kind { bounce, delay, autoreply, feedback, reply, unknown, delivered };

// The bounce categories of docs/DESIGN.md ("Categories and reasons"), typed: delivery,
// metrics and reports branch on these, never on text. `none`: not a failure (delivered,
// still pending); the failure categories come first so they can index arrays.
enum class Category : std::uint8_t { hard, soft, block, other, none };
inline constexpr std::size_t kFailureCategories = 4;  // hard, soft, block, other
std::string_view to_string(Category category);        // "hard", ...; "" for none
Category category_from(std::string_view text);        // "" -> none; unknown text -> other
std::string_view to_string(Kind);

// The classification of one failure. `reason` is Sisimai's vocabulary (userunknown,
// mailboxfull, blocked, ...; "delivered" for 2xx, "undefined" when nothing matched);
// `category` is hard | soft | block | other (docs/DESIGN.md "Categories and reasons");
// `hard` says the address itself is bad and must be suppressed at once.
struct Diagnosis {
  std::string reason;
  std::string category;
  bool hard = false;
};

// The data-driven rule set (format documented in data/bounce-rules.toml): enhanced
// status code first, reply-code fallback, then case-insensitive text patterns that
// refine or override the code's answer. Regexes are compiled once, when loaded.
// A bad rules file: what() reads "FILE:LINE: field 'F': message" (line 0 = whole file).
class RulesError : public std::runtime_error {
 public:
  RulesError(std::string file, std::size_t line, std::string field, const std::string& message);
  const std::string& file() const { return file_; }
  std::size_t line() const { return line_; }
  const std::string& field() const { return field_; }
  const std::string& message() const { return message_; }  // without the location

 private:
  std::string message_;
  std::string file_;
  std::size_t line_;
  std::string field_;
};

class Rules {
 public:
  // The rules compiled in from data/bounce-rules.toml; built once, never fails at
  // run time (a broken default file fails the build's tests, not production).
  static const Rules& builtin();
  // The built-in rules plus an ops file whose rules are consulted first. Throws
  // RulesError naming the file, line and field on a bad or unreadable file.
  static Rules load(const std::filesystem::path& extra_file);
  // Parses rules from text; `origin` names the source in error messages. Throws like load().
  static Rules parse_text(std::string_view toml_text, const std::string& origin);

  // An inline SMTP reply: code (e.g. 550), enhanced code ("5.1.1" or ""), text.
  Diagnosis classify(int code, std::string_view enhanced, std::string_view text) const;
  // A DSN's Status field ("5.1.1", may be "" or malformed) plus its diagnostic text
  // (e.g. "smtp; 550 5.1.1 <a@b>: Recipient address rejected"); the reply code and
  // the enhanced code inside the diagnostic are used when more specific.
  Diagnosis classify_status(std::string_view status, std::string_view diagnostic) const;

  // The category and hard flag of a reason ("other"/false for an unknown reason).
  Diagnosis verdict_for(std::string_view reason) const;

  Rules(Rules&&) noexcept;
  Rules& operator=(Rules&&) noexcept;
  ~Rules();

  struct Impl;  // opaque: the compiled rule set (bounce/rules.cpp)

 private:
  explicit Rules(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// One recipient of a bounce or delay notice.
struct RecipientReport {
  std::string recipient;   // final (or original) recipient address
  std::string status;      // "5.1.1" or ""
  std::string reply;       // diagnostic text, e.g. "550 5.1.1 <x@y>: Recipient address rejected" or ""
  std::string remote_mta;  // or ""
  std::string action;      // DSN Action: failed|delayed|delivered|relayed|expanded or ""
  Diagnosis verdict;
};

// A parsed inbound message.
struct Message {
  Kind kind = Kind::unknown;
  std::vector<RecipientReport> recipients;   // bounces/delays: one per failed recipient
  std::string feedback_type;                 // ARF: abuse, fraud, opt-out, ... (kind feedback)
  std::vector<std::string> verp_candidates;  // addresses that may carry the VERP token: To,
                                             // Delivered-To, X-Original-To of the bounce,
                                             // Return-Path / envelope sender and To of the
                                             // returned original message (text/rfc822,
                                             // text/rfc822-headers or inline)
  std::string original_message_id;           // Message-ID of the returned message, or ""
  std::string subject;                       // the notice's own Subject (decoded), or ""
  std::string from;                          // the notice's From address, or ""
};

// Parses a raw RFC 5322 message (LF or CRLF line ends). Never throws on bad input:
// garbage gives Kind::unknown with no recipients.
Message parse(std::string_view raw, const Rules& rules = Rules::builtin());

}  // namespace kurier::bounce
