// Minimal address handling for intake and routing: syntax check (RFC 5321
// Mailbox: dot-atom or quoted local part, domain of LDH or UTF-8 labels, length
// limits 64/254) and the routing domain. Pure; any thread. The list-hygiene issue
// builds its verdicts on top of this.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kurier::engine {

inline constexpr std::size_t kMaxLocalPartBytes = 64;   // RFC 5321 §4.5.3.1.1
inline constexpr std::size_t kMaxAddressBytes = 254;    // RFC 5321 path limit minus brackets
inline constexpr std::size_t kMaxDomainBytes = 253;

// nullopt if `address` is a valid mailbox, else a short description of the problem.
std::optional<std::string> address_problem(std::string_view address);

// The domain part, lower-cased ("" if there is no '@').
std::string domain_of(std::string_view address);

// Lower-cases the domain and keeps the local part as typed (local parts are
// case-sensitive in principle; never "correct" an address).
std::string normalize_address(std::string_view address);

// True if any byte is outside ASCII.
bool has_8bit(std::string_view text);

}  // namespace kurier::engine
