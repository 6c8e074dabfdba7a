// Classification of an SMTP reply into what happens to the recipient, with a
// category (hard, soft, block, other) and a reason from the Sisimai vocabulary
// (DESIGN.md). The enhanced status code decides first; the reply text refines it
// (a 5.1.1 that speaks of rate limits is not an unknown user). Pure; any thread.
#pragma once

#include <string>
#include <string_view>

namespace kurier::bounce {
class Rules;  // bounce/bounce.h
}

namespace kurier::engine {

enum class Disposition {
  delivered,  // 2xx
  deferred,   // 4xx: retry later
  bounced,    // 5xx: final
};

struct Classification {
  Disposition disposition = Disposition::deferred;
  std::string category;  // "hard", "soft", "block", "other"; "" for delivered
  std::string reason;    // "userunknown", "mailboxfull", ... ; "delivered"
  bool hard() const { return category == "hard"; }
};

// code: the 3-digit reply code (0 = no reply: network error, treated as deferred
// with reason networkerror). enhanced: "5.1.1" or "". text: the reply text.
Classification classify_reply(int code, std::string_view enhanced, std::string_view text);
// The same with a rule set of its own (an ops file from [bounce] rules consulted
// before the built-in rules: bounce::Rules::load).
Classification classify_reply(int code, std::string_view enhanced, std::string_view text,
                              const bounce::Rules& rules);

}  // namespace kurier::engine
