// Address syntax and routing domain. Pure; any thread; problems are returned as
// text, never thrown.
#include "engine/address.h"

#include <cctype>

namespace kurier::engine {
namespace {

bool is_atext(unsigned char c) {
  if (std::isalnum(c) || c >= 0x80) return true;  // >= 0x80: UTF-8 (RFC 6531)
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '/':
    case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
      return true;
    default:
      return false;
  }
}

std::optional<std::string> local_part_problem(std::string_view local) {
  if (local.empty()) return "empty local part";
  if (local.size() > kMaxLocalPartBytes) return "local part longer than 64 bytes";
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return "unterminated quoted local part";
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(local[i]);
      if (c == '\\') {
        if (++i + 1 >= local.size()) return "bad escape in quoted local part";
        continue;
      }
      if (c == '"' || c == '\r' || c == '\n' || c < 0x20) return "bad character in quoted local part";
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

std::optional<std::string> domain_problem(std::string_view domain) {
  if (domain.empty()) return "empty domain";
  if (domain.size() > kMaxDomainBytes) return "domain longer than 253 bytes";
  if (domain.front() == '[') return "IP-literal domains are not accepted";
  if (domain.find('.') == std::string_view::npos) return "domain has no dot";
  std::size_t start = 0;
  while (start <= domain.size()) {
    std::size_t end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    std::string_view label = domain.substr(start, end - start);
    if (label.empty()) return "empty label in domain";
    if (label.size() > 63) return "domain label longer than 63 bytes";
    if (label.front() == '-' || label.back() == '-') return "domain label starts or ends with '-'";
    for (unsigned char c : label)
      if (!(std::isalnum(c) || c == '-' || c >= 0x80)) return std::string("character '") + static_cast<char>(c) + "' not allowed in domain";
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> address_problem(std::string_view address) {
  if (address.empty()) return "empty address";
  if (address.size() > kMaxAddressBytes) return "address longer than 254 bytes";
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return "no '@'";
  if (auto p = local_part_problem(address.substr(0, at))) return p;
  return domain_problem(address.substr(at + 1));
}

std::string domain_of(std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string domain(address.substr(at + 1));
  for (auto& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return domain;
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
