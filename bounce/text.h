// Text helpers shared by the classifier and the parser (internal to bounce/):
// the common ASCII helpers (common/text.h), reply-text normalisation and the scan of a
// diagnostic line for its reply code and enhanced status code. Pure; any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/text.h"

namespace kurier::bounce {

using text::icontains;
using text::iequals;
using text::istarts_with;
using text::lower_ascii;
using text::trim;

// Lower case, whitespace runs folded to one space, reply-code tokens of multi-line
// replies ("550-5.1.1", "550", "5.1.1") dropped and e-mail addresses replaced by
// "<address>": what the [[pattern]] rules are matched against.
std::string normalize_reply_text(std::string_view text);

struct ReplyParts {
  int code = 0;               // first 2xx/4xx/5xx reply code, 0 if none
  std::string enhanced;       // first "c.s.d" status (c in 2,4,5), "" if none
};
// Finds the reply code and enhanced code in a diagnostic such as
// "smtp; 550-5.1.1 The email account ..." or "5.1.0 - Unknown address error 550-'5.7.1 ...'".
ReplyParts scan_reply(std::string_view diagnostic);

// True when `token` is an enhanced status code "c.s.d" (c in 2,4,5; s, d 1-3 digits).
bool is_enhanced_code(std::string_view token);

}  // namespace kurier::bounce
