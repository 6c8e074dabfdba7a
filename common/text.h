// ASCII text helpers for protocol data (domains, reply texts, config keys): case
// folding that ignores the locale, trimming, case-insensitive comparison, hex. Pure; any thread.
#pragma once

#include <string>
#include <string_view>

namespace kurier::text {

// Inline: called per character in hot loops (intake hygiene, glob matching, rendering).
constexpr char lower_char(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string lower_ascii(std::string_view s);
std::string_view trim(std::string_view s);  // spaces, tabs, CR, LF, FF, VT at both ends
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
bool icontains(std::string_view haystack, std::string_view needle);
// Lower-case hexadecimal of raw bytes (digests, tokens, store keys in error messages).
std::string to_hex(std::string_view bytes);

}  // namespace kurier::text
