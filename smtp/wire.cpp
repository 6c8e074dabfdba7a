// The Asio-free parts of the client contract: message wire form and per-recipient outcome.
// Pure functions on the caller's thread; they cannot fail except by bad_alloc.
// Kept apart from client.cpp so that neither pays for the other's compile time.
#include "smtp/client.h"

namespace kurier::smtp {

namespace {
constexpr std::string_view kCrlf = "\r\n";

bool accepted(const Reply& r) { return r.code >= 200 && r.code < 300; }
}  // namespace

std::string to_wire(std::string_view message) {
  std::string out;
  // Room for a handful of CR insertions and stuffed dots without regrowth.
  out.reserve(message.size() + message.size() / 32 + 8);
  std::size_t pos = 0;
  bool line_start = true;
  while (pos < message.size()) {
    if (line_start && message[pos] == '.') out += '.';  // RFC 5321 §4.5.2
    std::size_t eol = message.find_first_of(kCrlf, pos);
    if (eol == std::string_view::npos) {
      out.append(message.substr(pos));
      line_start = false;
      break;
    }
    out.append(message.substr(pos, eol - pos));
    out.append(kCrlf);
    // CRLF, bare LF and bare CR all end one line.
    pos = eol + (message[eol] == '\r' && eol + 1 < message.size() && message[eol + 1] == '\n' ? 2 : 1);
    line_start = true;
  }
  if (!line_start) out.append(kCrlf);
  return out;
}

const Reply& TransactionResult::outcome_for(std::size_t i) const {
  static const Reply kNoDecision{};
  if (!accepted(mail)) return mail;
  if (i >= rcpt.size()) return kNoDecision;
  if (!accepted(rcpt[i])) return rcpt[i];
  if (data.code != 354) return data;
  return final;
}

}  // namespace kurier::smtp
