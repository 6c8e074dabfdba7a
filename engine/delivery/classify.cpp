// The reply interpreter (engine/delivery/classify.h): the data-driven classifier of
// bounce/ for reason and category, plus what only delivery needs — the disposition from
// the reply class, "never hard while temporary", greylisting and its delay. Pure
// functions, any thread. Unknown input yields reason "undefined".
#include "engine/delivery/classify.h"

#include <cctype>

#include "common/text.h"

namespace kurier::engine {
namespace {

bool contains(const std::string& haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

Classification classify_reply(int code, std::string_view enhanced, std::string_view text) {
  return classify_reply(code, enhanced, text, bounce::Rules::builtin());
}

Classification classify_reply(int code, std::string_view enhanced, std::string_view text,
                              const bounce::Rules& rules) {
  Classification result;
  if (code >= 200 && code < 400) {
    result.disposition = Disposition::delivered;
    result.reason = "delivered";
    return result;
  }
  if (code == 0) {
    // No reply at all: connection or TLS failure before the server said anything.
    result.disposition = Disposition::deferred;
    result.reason = "networkerror";
    result.category = bounce::Category::soft;
    return result;
  }
  result.disposition = code >= 500 ? Disposition::bounced : Disposition::deferred;
  const bounce::Diagnosis verdict = rules.classify(code, enhanced, text);
  result.reason = verdict.reason;
  result.category = bounce::category_from(verdict.category);
  if (result.disposition == Disposition::deferred) {
    // A temporary failure is never a hard bounce, whatever the words: it is retried.
    if (result.category == bounce::Category::hard) result.category = bounce::Category::soft;
    result.greylisted = is_greylist_reply(code, enhanced, text);
    if (result.greylisted) result.retry_hint = greylist_hint(text);
  }
  return result;
}

bool is_greylist_reply(int code, std::string_view enhanced, std::string_view text) {
  if (code < 400 || code >= 500 || code == 421) return false;
  const std::string t = text::lower_ascii(text);
  if (contains(t, "greylist") || contains(t, "graylist") || contains(t, "grey-list") || contains(t, "gray-list") ||
      contains(t, "postgrey"))
    return true;
  // "try again later" alone is how many greylisters word it, but a full mailbox says
  // it too: only with the enhanced codes greylisters use.
  const bool greylist_code = enhanced == "4.2.0" || enhanced == "4.7.1" || enhanced == "4.7.0" || enhanced.empty();
  if (!greylist_code || (code != 450 && code != 451)) return false;
  return contains(t, "try again later") || contains(t, "please retry in") || contains(t, "try again in") ||
         contains(t, "retry in ") || contains(t, "temporarily deferred");
}

std::optional<std::chrono::seconds> greylist_hint(std::string_view text) {
  const std::string t = text::lower_ascii(text);
  // A number followed by a time unit: "300 seconds", "5 minutes", "2 min", "90s".
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(t[i])) || (i > 0 && std::isalnum(static_cast<unsigned char>(t[i - 1]))))
      continue;
    std::size_t j = i;
    long long value = 0;
    while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j])) && value < 1'000'000) value = value * 10 + (t[j++] - '0');
    while (j < t.size() && t[j] == ' ') ++j;
    std::string_view rest = std::string_view(t).substr(j);
    auto word = [&](std::string_view w) {
      return rest.starts_with(w) && (rest.size() == w.size() || !std::isalpha(static_cast<unsigned char>(rest[w.size()])));
    };
    if (word("seconds") || word("second") || word("secs") || word("sec") || word("s")) return std::chrono::seconds(value);
    if (word("minutes") || word("minute") || word("mins") || word("min") || word("m"))
      return std::chrono::seconds(value * 60);
    if (word("hours") || word("hour") || word("h")) return std::chrono::seconds(value * 3600);
    i = j;
  }
  return std::nullopt;
}

}  // namespace kurier::engine
