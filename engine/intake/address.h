// Minimal address handling for intake and routing: syntax check (RFC 5321
// Mailbox: dot-atom or quoted local part, domain of LDH or UTF-8 labels, length
// limits 64/254, IDN domains via libidn2) and the routing domain. Pure; any thread.
// engine/intake/hygiene/hygiene.h builds its verdicts on top of this.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kurier::engine {

inline constexpr std::size_t kMaxLocalPartBytes = 64;   // RFC 5321 §4.5.3.1.1
inline constexpr std::size_t kMaxAddressBytes = 254;    // RFC 5321 path limit minus brackets
inline constexpr std::size_t kMaxDomainBytes = 253;

// Syntax choices that are policy (kurier.toml [hygiene]).
struct AddressRules {
  // UTF-8 local parts (RFC 6531 SMTPUTF8). On by default: the SMTP client announces
  // SMTPUTF8 and refuses (553 5.6.7) to send such an address to an MX without it,
  // so the recipient's own server decides. IDN domains are always accepted: they
  // have an ASCII form (A-labels) that every MX understands.
  bool smtputf8 = true;
  // user@[192.0.2.1] and user@[IPv6:2001:db8::1]. Off by default: bulk mail to bare
  // IP addresses is almost always a data error or an abuse pattern.
  bool ip_literals = false;
};

// A valid address, split. `local` is a view into the parsed text.
struct ParsedAddress {
  std::string_view local;     // as typed: dot-atom or quoted string
  std::string domain;         // lower case ASCII: A-labels for IDNs (IDNA2008 via libidn2,
                              // non-transitional), or the IP literal with its brackets
  bool ip_literal = false;
};

// RFC 5321 Mailbox / RFC 5322 addr-spec without comments or folding: dot-atom or
// quoted local part (<= 64 bytes), domain of LDH labels (<= 63 bytes each, <= 253 in
// all, at least two labels, no all-numeric top label) or a U-label IDN, <= 254 bytes
// in all. Exactly one of the members is set.
struct AddressCheck {
  std::optional<ParsedAddress> address;
  std::string problem;  // short description, e.g. "no '@'"
};
AddressCheck parse_address(std::string_view address, const AddressRules& rules = {});

// nullopt if `address` is a valid mailbox (default rules), else a short description
// of the problem.
std::optional<std::string> address_problem(std::string_view address);

// The domain part, lower-cased ("" if there is no '@').
std::string domain_of(std::string_view address);

// The routing domain in its ASCII form: lower case, IDN labels as A-labels
// ("Bücher.example" -> "xn--bcher-kva.example"): what DNS and the shaping rules see.
// Falls back to domain_of() when the domain cannot be converted (the MX lookup then
// fails and says so). "" if there is no '@'.
std::string ascii_domain_of(std::string_view address);

// The address as RCPT TO carries it: the local part as typed, the domain as
// ascii_domain_of(). An IDN domain alone never needs SMTPUTF8 (RFC 6531 §3.2: only
// UTF-8 local parts and headers do), so this keeps such recipients deliverable to
// every MX. IP literals and addresses without '@' are returned unchanged.
std::string ascii_address(std::string_view address);

// Lower-cases the domain and keeps the local part as typed (local parts are
// case-sensitive in principle; never "correct" an address).
std::string normalize_address(std::string_view address);

// True if any byte is outside ASCII.
bool has_8bit(std::string_view text);

}  // namespace kurier::engine
