// Reply classification for the delivery engine: a thin adapter over the one
// data-driven classifier in bounce/ (data/bounce-rules.toml), adding what only the
// engine needs — the disposition from the reply class and "never hard while
// temporary". Pure functions, any thread. Unknown input yields reason "undefined".
#include "engine/delivery/classify.h"

#include "bounce/bounce.h"

namespace kurier::engine {

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
    result.category = "soft";
    return result;
  }
  result.disposition = code >= 500 ? Disposition::bounced : Disposition::deferred;
  const bounce::Verdict verdict = rules.classify(code, enhanced, text);
  result.reason = verdict.reason;
  result.category = verdict.category;
  // A temporary failure is never a hard bounce, whatever the words: it is retried.
  if (result.disposition == Disposition::deferred && result.category == "hard") result.category = "soft";
  return result;
}

}  // namespace kurier::engine
