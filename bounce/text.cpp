// Text helpers for the classifier and parser: pure functions, any thread, no allocation
// beyond the returned strings.
#include "bounce/text.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace kurier::bounce {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
using text::lower_char;

// A reply code as it appears in replies: 2xx, 4xx or 5xx with a sane second digit.
bool is_reply_code(std::string_view t) {
  return t.size() == 3 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) &&
         (t[0] == '2' || t[0] == '4' || t[0] == '5') && t[1] <= '5';
}

// "550", "550-", "550-5.1.1", "5.1.1" (with quotes or punctuation around): the
// bookkeeping of multi-line replies, which interrupts the words patterns look for.
bool is_code_token(std::string_view t) {
  while (!t.empty() && (t.front() == '\'' || t.front() == '"' || t.front() == '(' || t.front() == '['))
    t.remove_prefix(1);
  while (!t.empty() && (t.back() == '\'' || t.back() == '"' || t.back() == ',' || t.back() == ';' ||
                        t.back() == ':' || t.back() == ')' || t.back() == ']' || t.back() == '-'))
    t.remove_suffix(1);
  if (t.empty()) return false;
  if (is_enhanced_code(t)) return true;
  if (t.size() >= 3 && is_reply_code(t.substr(0, 3))) {
    if (t.size() == 3) return true;
    if (t[3] == '-' || t[3] == ' ') return t.size() == 4 || is_enhanced_code(t.substr(4));
  }
  return false;
}

}  // namespace

bool is_enhanced_code(std::string_view t) {
  if (t.size() < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.') return false;
  std::size_t parts = 1;
  std::size_t digits = 0;
  for (std::size_t i = 2; i < t.size(); ++i) {
    if (t[i] == '.') {
      if (digits == 0) return false;
      ++parts;
      digits = 0;
    } else if (is_digit(t[i])) {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return parts == 2 && digits > 0;
}

std::string normalize_reply_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (start == i) break;
    const std::string_view token = text.substr(start, i - start);
    if (is_code_token(token)) continue;
    if (!out.empty()) out += ' ';
    if (token.find('@') != std::string_view::npos && token.size() > 2) {
      out += "<address>";
      // Keep a trailing "..." or ":" that separates the address from the words.
      if (token.back() == ':' || token.back() == ',') out += token.back();
    } else {
      for (char c : token) out += lower_char(c);
    }
  }
  return out;
}

ReplyParts scan_reply(std::string_view d) {
  struct Token {
    std::string_view text;
    std::size_t begin;
    std::size_t end;
  };
  std::vector<Token> tokens;
  for (std::size_t i = 0; i < d.size();) {
    if (!is_digit(d[i])) {
      ++i;
      continue;
    }
    // Digits glued to letters or underscores ("OFR_416", "v14si") are not codes.
    const bool glued = i > 0 && (std::isalpha(static_cast<unsigned char>(d[i - 1])) != 0 || d[i - 1] == '_');
    const std::size_t start = i;
    while (i < d.size() && (is_digit(d[i]) || d[i] == '.')) ++i;
    std::size_t end = i;
    while (end > start && d[end - 1] == '.') --end;  // sentence full stop
    if (!glued) tokens.push_back({d.substr(start, end - start), start, end});
  }
  ReplyParts parts;
  std::string_view first_enhanced;
  std::string_view enhanced_after_code;
  int code_before_enhanced = 0;
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    const Token& t = tokens[k];
    if (parts.code == 0 && is_reply_code(t.text)) {
      const char next = t.end < d.size() ? d[t.end] : ' ';
      if (next == ' ' || next == '-' || next == '\'' || next == '\t' || next == '\r' || next == '\n')
        parts.code = (t.text[0] - '0') * 100 + (t.text[1] - '0') * 10 + (t.text[2] - '0');
    }
    if (!is_enhanced_code(t.text)) continue;
    if (first_enhanced.empty()) first_enhanced = t.text;
    if (enhanced_after_code.empty() && k > 0 && is_reply_code(tokens[k - 1].text)) {
      const std::string_view between = d.substr(tokens[k - 1].end, t.begin - tokens[k - 1].end);
      if (between.size() <= 3 && between.find_first_not_of(" -'\"") == std::string_view::npos)
      {
        enhanced_after_code = t.text;
        const std::string_view c = tokens[k - 1].text;
        code_before_enhanced = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
      }
    }
  }
  parts.enhanced = std::string(!enhanced_after_code.empty() ? enhanced_after_code : first_enhanced);
  if (code_before_enhanced != 0) parts.code = code_before_enhanced;  // "220-x 421 4.2.1": the 421
  return parts;
}

}  // namespace kurier::bounce
