// Reply classification: enhanced code first, then keywords in the text, then the
// basic reply code. Pure functions, any thread. Unknown input yields reason
// "undefined", never an error.
#include "engine/classify.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace kurier::engine {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// Text patterns that override or refine the status code, most specific first.
// Kept small here; the bounce-management issue moves rules into a data file.
struct TextRule {
  std::string_view needle;
  std::string_view reason;
};
constexpr std::array kTextRules = {
    TextRule{"greylist", "onhold"},
    TextRule{"graylist", "onhold"},
    TextRule{"too many connections", "toomanyconn"},
    TextRule{"too many messages", "speeding"},
    TextRule{"rate limit", "speeding"},
    TextRule{"rate-limit", "speeding"},
    TextRule{"try again later", ""},  // neutral: keep the code's reason
    TextRule{"spamhaus", "blocked"},
    TextRule{"blacklist", "blocked"},
    TextRule{"blocklist", "blocked"},
    TextRule{"listed at", "blocked"},
    TextRule{"reputation", "badreputation"},
    TextRule{"reverse dns", "requireptr"},
    TextRule{"ptr record", "requireptr"},
    TextRule{"spf", "authfailure"},
    TextRule{"dkim", "authfailure"},
    TextRule{"dmarc", "authfailure"},
    TextRule{"virus", "virusdetected"},
    TextRule{"spam", "spamdetected"},
    TextRule{"mailbox full", "mailboxfull"},
    TextRule{"mailbox is full", "mailboxfull"},
    TextRule{"over quota", "mailboxfull"},
    TextRule{"quota exceeded", "mailboxfull"},
    TextRule{"insufficient storage", "mailboxfull"},
    TextRule{"message too large", "mesgtoobig"},
    TextRule{"message size exceeds", "mesgtoobig"},
    TextRule{"relay access denied", "norelaying"},
    TextRule{"relaying denied", "norelaying"},
    TextRule{"not permitted to relay", "norelaying"},
    TextRule{"user unknown", "userunknown"},
    TextRule{"unknown user", "userunknown"},
    TextRule{"no such user", "userunknown"},
    TextRule{"does not exist", "userunknown"},
    TextRule{"recipient address rejected", "userunknown"},
    TextRule{"mailbox unavailable", "userunknown"},
    TextRule{"account disabled", "suspend"},
    TextRule{"account has been disabled", "suspend"},
    TextRule{"mailbox disabled", "suspend"},
    TextRule{"host not found", "hostunknown"},
    TextRule{"domain not found", "hostunknown"},
};

// RFC 3463 subject.detail -> reason.
std::string_view reason_for_enhanced(std::string_view enhanced) {
  if (enhanced.size() < 5) return {};
  std::string_view sd = enhanced.substr(2);
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 26> kMap = {{
      {"1.1", "userunknown"},   {"1.0", "userunknown"},     {"1.2", "hostunknown"},
      {"1.3", "syntaxerror"},   {"1.6", "hasmoved"},        {"1.10", "notaccept"},
      {"2.1", "suspend"},       {"2.2", "mailboxfull"},     {"2.3", "mesgtoobig"},
      {"2.4", "mailererror"},   {"3.0", "systemerror"},     {"3.1", "systemfull"},
      {"3.2", "notaccept"},     {"3.4", "mesgtoobig"},      {"3.5", "systemerror"},
      {"4.1", "networkerror"},  {"4.2", "networkerror"},    {"4.3", "systemerror"},
      {"4.4", "hostunknown"},   {"4.6", "networkerror"},    {"4.7", "expired"},
      {"5.3", "syntaxerror"},   {"6.0", "contenterror"},    {"7.1", "rejected"},
      {"7.26", "authfailure"},  {"7.28", "speeding"},
  }};
  for (const auto& [key, reason] : kMap)
    if (sd == key) return reason;
  if (sd.starts_with("7.")) {
    // 5.7.x: security/policy.
    if (sd == "7.0") return "securityerror";
    if (sd == "7.25") return "requireptr";
    if (sd == "7.23" || sd == "7.24" || sd == "7.27") return "authfailure";
    return "policyviolation";
  }
  if (sd == "2.0") return "mailboxfull";  // often "mailbox unavailable": refined by text below
  return {};
}

bool is_mailbox_word(std::string_view reason) {
  return reason == "userunknown" || reason == "hostunknown" || reason == "mailboxfull" || reason == "suspend" ||
         reason == "mesgtoobig" || reason == "norelaying";
}

bool is_generic_code_reason(std::string_view reason) {
  return reason == "rejected" || reason == "policyviolation" || reason == "systemerror" ||
         reason == "securityerror" || reason == "undefined";
}

}  // namespace

std::string category_for(std::string_view reason) {
  static constexpr std::array<std::string_view, 5> kHard = {"userunknown", "hostunknown", "hasmoved", "notaccept",
                                                            "suspend"};
  static constexpr std::array<std::string_view, 11> kBlock = {
      "blocked",     "spamdetected",  "policyviolation", "rejected", "badreputation", "requireptr",
      "authfailure", "virusdetected", "securityerror",   "norelaying", "contenterror"};
  if (reason == "delivered") return "";
  for (auto r : kHard)
    if (reason == r) return "hard";
  for (auto r : kBlock)
    if (reason == r) return "block";
  if (reason == "undefined") return "other";
  return "soft";
}

Classification classify_reply(int code, std::string_view enhanced, std::string_view text) {
  Classification result;
  if (code >= 200 && code < 400) {
    result.disposition = Disposition::delivered;
    result.reason = "delivered";
    return result;
  }
  if (code == 0) {
    result.disposition = Disposition::deferred;
    result.reason = "networkerror";
    result.category = "soft";
    return result;
  }
  result.disposition = code >= 500 ? Disposition::bounced : Disposition::deferred;

  std::string reason(reason_for_enhanced(enhanced));
  const std::string lowered = lower(text);
  for (const auto& rule : kTextRules) {
    if (!contains(lowered, rule.needle)) continue;
    if (rule.reason.empty()) break;
    // The text names a cause the code cannot express (rate limits, blocklists,
    // greylisting, spam): it wins. Words that only restate a mailbox problem refine
    // a generic code but never replace a specific one.
    if (reason.empty() || !is_mailbox_word(rule.reason) || is_generic_code_reason(reason)) reason = rule.reason;
    break;
  }
  if (reason.empty()) {
    switch (code) {
      case 421: reason = "toomanyconn"; break;
      case 450: case 550: reason = "userunknown"; break;  // mailbox unavailable
      case 451: reason = "systemerror"; break;
      case 452: case 552: reason = "mailboxfull"; break;
      case 553: reason = "userunknown"; break;
      case 554: reason = "rejected"; break;
      default: reason = "undefined"; break;
    }
    // A bare 550 without an enhanced code or telling text is too vague for "hard".
    if (code == 550 && lowered.find("user") == std::string::npos && lowered.find("mailbox") == std::string::npos &&
        lowered.find("recipient") == std::string::npos && lowered.find("address") == std::string::npos)
      reason = "rejected";
  }
  result.reason = reason;
  result.category = category_for(reason);
  // A temporary failure is never a hard bounce, whatever the words.
  if (result.disposition == Disposition::deferred && result.category == "hard") result.category = "soft";
  return result;
}

}  // namespace kurier::engine
