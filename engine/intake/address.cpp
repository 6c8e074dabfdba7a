// Address syntax and routing domain. Pure; any thread; problems are returned as
// text, never thrown. IDN conversion is libidn2's (thread-safe, no global state).
#include "engine/intake/address.h"

#include <arpa/inet.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <idn2.h>

#include "common/text.h"

namespace kurier::engine {
namespace {

bool is_atext(unsigned char c) {
  if (std::isalnum(c) || c >= 0x80) return true;  // >= 0x80: UTF-8 (RFC 6531), checked separately
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '/':
    case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
      return true;
    default:
      return false;
  }
}

// Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1Fu; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0Fu; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07u; }
    else return false;
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::optional<std::string> local_part_problem(std::string_view local, const AddressRules& rules) {
  if (local.empty()) return "empty local part";
  if (local.size() > kMaxLocalPartBytes) return "local part longer than 64 bytes";
  if (has_8bit(local)) {
    if (!rules.smtputf8) return "non-ASCII local part (SMTPUTF8 addresses are not allowed)";
    if (!valid_utf8(local)) return "local part is not valid UTF-8";
  }
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return "unterminated quoted local part";
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(local[i]);
      if (c == '\\') {
        if (++i + 1 >= local.size()) return "bad escape in quoted local part";
        continue;
      }
      if (c == '"' || c < 0x20 || c == 0x7f) return "bad character in quoted local part";
    }
    return std::nullopt;
  }
  if (local.front() == '.' || local.back() == '.') return "local part starts or ends with '.'";
  for (std::size_t i = 0; i < local.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(local[i]);
    if (c == '.') {
      if (local[i + 1] == '.') return "consecutive dots in local part";
      continue;
    }
    if (!is_atext(c)) return std::string("character '") + static_cast<char>(c) + "' not allowed in local part";
  }
  return std::nullopt;
}

// LDH labels of an ASCII domain (after IDNA conversion).
std::optional<std::string> ascii_domain_problem(std::string_view domain) {
  if (domain.empty()) return "empty domain";
  if (domain.size() > kMaxDomainBytes) return "domain longer than 253 bytes";
  if (domain.find('.') == std::string_view::npos) return "domain has no dot";
  std::size_t start = 0;
  std::string_view label;
  while (start <= domain.size()) {
    std::size_t end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    label = domain.substr(start, end - start);
    if (label.empty()) return "empty label in domain";
    if (label.size() > 63) return "domain label longer than 63 bytes";
    if (label.front() == '-' || label.back() == '-') return "domain label starts or ends with '-'";
    for (unsigned char c : label)
      if (!(std::isalnum(c) || c == '-')) return std::string("character '") + static_cast<char>(c) + "' not allowed in domain";
    start = end + 1;
  }
  // RFC 3696 §2: top-level domains are never all-numeric; "user@10.0.0.1" is an IP
  // address without the brackets an address literal needs.
  if (std::all_of(label.begin(), label.end(), [](unsigned char c) { return std::isdigit(c); }))
    return "top-level domain is numeric (an IP address needs brackets)";
  return std::nullopt;
}

std::optional<std::string> ip_literal_problem(std::string_view literal, const AddressRules& rules) {
  if (!rules.ip_literals) return "IP-literal domains are not accepted";
  if (literal.size() < 3 || literal.back() != ']') return "unterminated IP literal";
  std::string inner(literal.substr(1, literal.size() - 2));
  unsigned char buf[sizeof(in6_addr)];
  if (inner.size() > 5 && strncasecmp(inner.c_str(), "IPv6:", 5) == 0) {
    if (inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1) return std::nullopt;
    return "not an IPv6 address literal";
  }
  if (inet_pton(AF_INET, inner.c_str(), buf) == 1) return std::nullopt;
  return "not an IPv4 address literal";
}

// The domain as an ASCII, lower-case name, or the problem. U-labels go through
// libidn2 (IDNA2008 with the UTS #46 non-transitional mapping: "ß" stays "ß", as
// browsers and current resolvers do); "xn--" labels are checked the same way.
std::optional<std::string> to_ascii_domain(std::string_view domain, std::string& out) {
  out = text::lower_ascii(domain);
  const bool idn = has_8bit(out) || out.starts_with("xn--") || out.find(".xn--") != std::string::npos;
  if (!idn) return std::nullopt;
  if (has_8bit(out) && !valid_utf8(out)) return "domain is not valid UTF-8";
  char* ascii = nullptr;
  int rc = idn2_to_ascii_8z(out.c_str(), &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc != IDN2_OK) return std::string("not a valid internationalized domain: ") + idn2_strerror(rc);
  out = ascii;
  idn2_free(ascii);
  return std::nullopt;
}

}  // namespace

AddressCheck parse_address(std::string_view address, const AddressRules& rules) {
  AddressCheck check;
  auto fail = [&](std::string problem) {
    check.problem = std::move(problem);
    return check;
  };
  if (address.empty()) return fail("empty address");
  if (address.size() > kMaxAddressBytes) return fail("address longer than 254 bytes");
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return fail("no '@'");
  std::string_view local = address.substr(0, at);
  std::string_view domain = address.substr(at + 1);
  if (auto p = local_part_problem(local, rules)) return fail(*p);
  ParsedAddress parsed;
  parsed.local = local;
  if (!domain.empty() && domain.front() == '[') {
    if (auto p = ip_literal_problem(domain, rules)) return fail(*p);
    parsed.domain = text::lower_ascii(domain);
    parsed.ip_literal = true;
  } else {
    if (domain.empty()) return fail("empty domain");
    if (auto p = to_ascii_domain(domain, parsed.domain)) return fail(*p);
    if (auto p = ascii_domain_problem(parsed.domain)) return fail(*p);
    if (local.size() + 1 + parsed.domain.size() > kMaxAddressBytes) return fail("address longer than 254 bytes");
  }
  check.address = std::move(parsed);
  return check;
}

std::optional<std::string> address_problem(std::string_view address) {
  AddressCheck check = parse_address(address);
  if (check.address) return std::nullopt;
  return check.problem;
}

std::string domain_of(std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return text::lower_ascii(address.substr(at + 1));
}

std::string ascii_domain_of(std::string_view address) {
  std::string domain = domain_of(address);
  if (!has_8bit(domain)) return domain;
  std::string ascii;
  if (to_ascii_domain(domain, ascii)) return domain;  // not convertible: left to the lookup to fail
  return ascii;
}

std::string ascii_address(std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos || !has_8bit(address.substr(at + 1))) return std::string(address);
  return std::string(address.substr(0, at + 1)) + ascii_domain_of(address);
}

std::string normalize_address(std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::string(address);
  return std::string(address.substr(0, at + 1)) + domain_of(address);
}

bool has_8bit(std::string_view text) {
  for (unsigned char c : text)
    if (c >= 0x80) return true;
  return false;
}

}  // namespace kurier::engine
