// The one reply interpreter: what an SMTP reply (or its absence) means for the recipient
// — disposition, a typed category (hard, soft, block, other) and a reason from the
// Sisimai vocabulary (docs/DESIGN.md), and whether it is a greylister pacing us (with the
// delay it asks for). The enhanced status code decides first; the reply text refines it
// (a 5.1.1 that speaks of rate limits is not an unknown user); the rules are the data-
// driven ones of bounce/ (data/bounce-rules.toml, plus an ops file from [bounce] rules).
// Throttling replies are recognised per shaping key, by the key's own rules
// (engine/delivery/shaping/shaping.h). Pure; any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "bounce/bounce.h"

namespace kurier::engine {

enum class Disposition {
  delivered,  // 2xx
  deferred,   // 4xx: retry later
  bounced,    // 5xx: final
};

struct Classification {
  Disposition disposition = Disposition::deferred;
  bounce::Category category = bounce::Category::none;  // none for delivered
  std::string reason;  // "userunknown", "mailboxfull", ... ; "delivered"
  // A greylisting reply: retried after the server's own delay (retry_hint) or the
  // configured one, without advancing the retry schedule.
  bool greylisted = false;
  std::optional<std::chrono::seconds> retry_hint;
  bool hard() const { return category == bounce::Category::hard; }
};

// code: the 3-digit reply code (0 = no reply: network error, treated as deferred
// with reason networkerror). enhanced: "5.1.1" or "". text: the reply text.
Classification classify_reply(int code, std::string_view enhanced, std::string_view text);
// The same with a rule set of its own (an ops file from [bounce] rules consulted
// before the built-in rules: bounce::Rules::load).
Classification classify_reply(int code, std::string_view enhanced, std::string_view text,
                              const bounce::Rules& rules);

// Greylisting: a 450/451 (or another 4xx) with a greylisting enhanced code and wording
// ("greylist", "graylist", postgrey's "Greylisted, see ...", "try again later",
// "please retry in N seconds").
bool is_greylist_reply(int code, std::string_view enhanced, std::string_view text);
// "retry in 90 seconds", "Greylisted for 5 minutes", "try again in 2 min": the server's
// own delay, when its text says one.
std::optional<std::chrono::seconds> greylist_hint(std::string_view text);

}  // namespace kurier::engine
