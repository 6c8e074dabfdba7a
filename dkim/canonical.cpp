// Wire-form message parsing and RFC 6376 relaxed header canonicalisation.
// Pure functions on the signing thread; no allocation beyond the field list.
// Fails with SignError for a message without a header/body separator.
#include <string>

#include "dkim/detail.h"

namespace kurier::dkim::detail {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_signed_header(std::string_view name) {
  for (std::string_view h : kSignedHeaders) {
    if (iequals(name, h)) return true;
  }
  return false;
}

ParsedMessage parse_message(std::string_view wire) {
  ParsedMessage message;
  std::size_t pos = 0;
  for (;;) {
    if (wire.substr(pos, 2) == "\r\n") {
      message.body = wire.substr(pos + 2);
      return message;
    }
    if (pos >= wire.size()) throw SignError("DKIM: message has no empty line ending the header");
    const std::size_t start = pos;
    std::size_t eol;
    for (;;) {
      eol = wire.find("\r\n", pos);
      if (eol == std::string_view::npos) throw SignError("DKIM: message has no empty line ending the header");
      pos = eol + 2;
      if (pos >= wire.size() || !is_wsp(wire[pos])) break;  // not a continuation line
    }
    std::string_view text = wire.substr(start, eol - start);
    if (text.starts_with("..")) text.remove_prefix(1);  // un-stuff (a field name may start with '.')
    std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      throw SignError("DKIM: header line without ':': \"" + std::string(text.substr(0, 80)) + "\"");
    }
    std::string_view name = text.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    message.fields.push_back(HeaderField{text, name});
  }
}

void append_relaxed_header(std::string_view field, std::string& out) {
  std::size_t colon = field.find(':');
  std::string_view name = field.substr(0, colon);
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out.push_back(lower(c));
  out.push_back(':');
  bool started = false;  // leading WSP of the value is dropped
  bool space = false;    // a WSP run is pending: written as one SP before the next character
  for (char c : field.substr(colon + 1)) {
    if (c == '\r' || c == '\n') continue;  // unfold: the CRLF of a fold always precedes WSP
    if (is_wsp(c)) {
      space = started;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    started = true;
    out.push_back(c);
  }
}

std::string unstuff(std::string_view wire) {
  std::string out;
  out.reserve(wire.size());
  std::size_t pos = 0;
  while (pos < wire.size()) {
    if (wire[pos] == '.') ++pos;  // at a line start: a stuffed '.'
    std::size_t eol = wire.find("\r\n", pos);
    std::size_t end = eol == std::string_view::npos ? wire.size() : eol + 2;
    out.append(wire.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

}  // namespace kurier::dkim::detail
