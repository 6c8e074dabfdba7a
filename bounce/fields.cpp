// Field blocks, addresses and NDR prose scraping: pure string work, any thread.
// Unknown layouts yield fewer recipients, never an error.
#include "bounce/fields.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "bounce/text.h"

namespace kurier::bounce {
namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == text.size()) break;
    start = end + 1;
  }
  return lines;
}

bool is_field_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

// "Name: value" -> name length, 0 when the line is not a field.
std::size_t field_name_length(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && is_field_name_char(line[i])) ++i;
  if (i == 0 || i >= line.size() || line[i] != ':') return 0;
  return i;
}

bool is_blank(std::string_view line) { return trim(line).empty(); }

bool is_address_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::string_view("!#$%&'*+-/=?^_`{|}~.@\"").find(c) !=
                                                                std::string_view::npos ||
         static_cast<unsigned char>(c) >= 0x80;
}

// A plausible address: local@domain with a dot in the domain (or a bracketed literal).
bool plausible_address(std::string_view a) {
  const std::size_t at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= a.size()) return false;
  const std::string_view domain = a.substr(at + 1);
  return domain.find('.') != std::string_view::npos && domain.front() != '.' && domain.back() != '.';
}

// If `line` (trimmed) begins with an address, returns it and sets `rest` to what follows.
std::string leading_address(std::string_view line, std::string_view& rest) {
  std::string_view t = trim(line);
  for (std::string_view bullet : {"* ", "- ", "• "})
    if (t.starts_with(bullet)) t = trim(t.substr(bullet.size()));
  std::string address;
  std::size_t end = 0;
  if (!t.empty() && t.front() == '<') {
    end = t.find('>');
    if (end == std::string_view::npos) return {};
    address = std::string(t.substr(1, end - 1));
    ++end;
  } else {
    while (end < t.size() && is_address_char(t[end])) ++end;
    address = std::string(t.substr(0, end));
    while (!address.empty() && (address.back() == '.' || address.back() == ':')) {
      address.pop_back();
    }
    end = std::min(end, address.size());
  }
  if (address.starts_with("mailto:")) address.erase(0, 7);
  if (!plausible_address(address)) return {};
  std::string_view after = trim(t.substr(end));
  // "(expanded from <x@y>)", "(generated from x@y)", "(x@y)": an aside about the address.
  if (after.starts_with("(")) {
    const std::size_t close = after.find(')');
    if (close == std::string_view::npos) return {};
    after = trim(after.substr(close + 1));
  }
  if (after.starts_with("...")) {
    rest = trim(after.substr(3));  // Sendmail: "<a@b>... User unknown"
  } else if (after.starts_with(":")) {
    rest = trim(after.substr(1));
  } else if (after.empty()) {
    rest = {};
  } else {
    return {};  // an address inside a sentence is not a recipient line
  }
  return address;
}

// Phrases that introduce the failed recipient inside a sentence (Gmail, Exchange, ...).
std::string address_after_phrase(std::string_view line) {
  static constexpr std::array<std::string_view, 10> kPhrases = {
      "wasn't delivered to ",  "was not delivered to ",   "could not be delivered to ",
      "couldn't be delivered to ", "delivery to the following recipient failed",
      "failed recipient: ",    "original recipient: ",    "recipient address: ",
      "delivery to ",          "unable to deliver your message to "};
  const std::string lowered = lower_ascii(line);
  for (auto phrase : kPhrases) {
    const std::size_t at = lowered.find(phrase);
    if (at == std::string::npos) continue;
    const std::string_view tail = line.substr(at + phrase.size());
    const std::string address = extract_address(tail.substr(0, std::min<std::size_t>(tail.size(), 200)));
    // Only the address that directly follows the phrase.
    const std::size_t pos = lower_ascii(tail).find(lower_ascii(address));
    if (!address.empty() && pos != std::string::npos && pos <= 2) return address;
  }
  return {};
}

// Where the notice ends and the returned message begins.
bool is_returned_marker(std::string_view line) {
  static constexpr std::array<std::string_view, 16> kMarkers = {
      "below this line is a copy of the message",
      "below is a copy of the original message",
      "this is a copy of the message",
      "original message follows",
      "original message headers",
      "----- original message -----",
      "--- original message",
      "message headers follow",
      "header of the original message",
      "copy of the original message",
      "returned message follows",
      "headers of the original message",
      "original message header",
      "----- transcript of session follows -----",
      "------ this is a copy of",
      "message text follows"};
  const std::string lowered = lower_ascii(line);
  return std::any_of(kMarkers.begin(), kMarkers.end(),
                     [&](std::string_view m) { return lowered.find(m) != std::string::npos; });
}

bool says_delayed(std::string_view text) {
  static constexpr std::array<std::string_view, 9> kPhrases = {
      "this is a warning message only", "will continue to try",      "will be retried",
      "has not yet been delivered",     "delivery attempts will continue", "still being retried",
      "will keep trying",               "not been delivered yet",    "will try again"};
  const std::string lowered = lower_ascii(text);
  return std::any_of(kPhrases.begin(), kPhrases.end(),
                     [&](std::string_view p) { return lowered.find(p) != std::string::npos; });
}

// Header lines whose numbers (times, IPs, ids) are not reply codes. Other "Name:" lines
// stay candidates: transcripts ("Out: 451 4.3.0 ...") and inline DSN fields carry codes.
bool is_dated_header(std::string_view line) {
  const std::size_t n = field_name_length(line);
  if (n == 0) return false;
  const std::string_view name = line.substr(0, n);
  for (std::string_view h : {"date", "received", "message-id", "arrival-date", "last-attempt-date",
                             "will-retry-until", "content-type", "mime-version", "return-path", "references"})
    if (iequals(name, h)) return true;
  return istarts_with(name, "x-");
}

bool carries_code(std::string_view line) {
  const ReplyParts parts = scan_reply(line);
  return parts.code != 0 || !parts.enhanced.empty();
}

}  // namespace

std::vector<FieldBlock> parse_field_blocks(std::string_view text) {
  std::vector<FieldBlock> blocks;
  FieldBlock current;
  for (std::string_view line : split_lines(text)) {
    if (is_blank(line)) {
      if (!current.empty()) blocks.push_back(std::move(current));
      current.clear();
      continue;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !current.empty()) {
      std::string& value = current.back().value;
      if (!value.empty()) value += ' ';
      value += trim(line);
      continue;
    }
    if (const std::size_t n = field_name_length(line); n > 0)
      current.push_back({std::string(line.substr(0, n)), std::string(trim(line.substr(n + 1)))});
  }
  if (!current.empty()) blocks.push_back(std::move(current));
  return blocks;
}

std::string field(const FieldBlock& block, std::string_view name) {
  for (const auto& f : block)
    if (iequals(f.name, name)) return f.value;
  return {};
}

std::string_view extract_angle(std::string_view text) {
  const std::size_t open = text.find('<');
  if (open == std::string_view::npos) return text;
  const std::size_t close = text.find('>', open);
  if (close == std::string_view::npos) return text;
  return text.substr(open + 1, close - open - 1);
}

std::string extract_address(std::string_view text) {
  // Bracketed first: "Name <a@b>".
  for (std::size_t open = text.find('<'); open != std::string_view::npos; open = text.find('<', open + 1)) {
    const std::size_t close = text.find('>', open);
    if (close == std::string_view::npos) break;
    std::string_view inside = trim(text.substr(open + 1, close - open - 1));
    if (inside.starts_with("mailto:")) inside.remove_prefix(7);
    if (plausible_address(inside)) return std::string(inside);
  }
  std::size_t at = text.find('@');
  while (at != std::string_view::npos) {
    std::size_t begin = at;
    while (begin > 0 && is_address_char(text[begin - 1])) --begin;
    std::size_t end = at + 1;
    while (end < text.size() && is_address_char(text[end])) ++end;
    std::string address(text.substr(begin, end - begin));
    while (!address.empty() && std::string_view(".:;,'\"").find(address.back()) != std::string_view::npos)
      address.pop_back();
    while (!address.empty() && std::string_view("'\"").find(address.front()) != std::string_view::npos &&
           std::count(address.begin(), address.end(), address.front()) == 1)
      address.erase(0, 1);
    if (plausible_address(address)) return address;
    at = text.find('@', at + 1);
  }
  return {};
}

ScrapedNdr scrape_ndr(std::string_view text, std::size_t max_diagnostic_lines) {
  ScrapedNdr out;
  const std::vector<std::string_view> lines = split_lines(text);
  std::size_t cut = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (is_returned_marker(lines[i])) {
      cut = i;
      break;
    }
    // Headers of a returned message pasted without a marker.
    if (i > 3 && (lines[i].starts_with("Return-Path:") || lines[i].starts_with("Received: from")) &&
        is_blank(lines[i - 1])) {
      cut = i;
      break;
    }
  }
  // The returned headers: the first block of fields after the marker.
  if (cut < lines.size()) {
    // From the end of the marker line on.
    const std::size_t marker_end = static_cast<std::size_t>(lines[cut].data() - text.data()) + lines[cut].size();
    const std::size_t start = std::min(marker_end, text.size());
    for (auto& block : parse_field_blocks(text.substr(start))) {
      if (block.size() >= 2 && !field(block, "Final-Recipient").size()) {
        out.returned_headers = std::move(block);
        break;
      }
    }
  }
  const std::string_view notice =
      cut < lines.size() ? text.substr(0, static_cast<std::size_t>(lines[cut].data() - text.data())) : text;
  out.delayed = says_delayed(notice);

  // Transcripts (Sendmail) follow the marker but carry the best diagnostic.
  std::string success_line;  // a 2xx line is only used when no failure line exists
  for (std::size_t i = 0; i < lines.size() && out.fallback_diagnostic.empty(); ++i) {
    const std::string_view t = trim(lines[i]);
    if (t.empty() || is_dated_header(t) || i > cut + 60) continue;
    const ReplyParts parts = scan_reply(t);
    if (parts.code == 0 && parts.enhanced.empty()) continue;  // carries no code
    if ((parts.code >= 200 && parts.code < 400) || parts.code == 354 || (parts.code == 0 && parts.enhanced.starts_with("2"))) {
      if (success_line.empty()) success_line = std::string(t);
      continue;
    }
    std::string diagnostic(t);
    for (std::size_t j = i + 1; j < lines.size() && j < i + max_diagnostic_lines && !is_blank(lines[j]); ++j) {
      if (lines[j].front() != ' ' && lines[j].front() != '\t') break;
      diagnostic += ' ';
      diagnostic += trim(lines[j]);
    }
    out.fallback_diagnostic = diagnostic;
  }
  if (out.fallback_diagnostic.empty()) out.fallback_diagnostic = success_line;

  auto add = [&out](std::string address, std::string diagnostic) {
    for (auto& r : out.recipients) {
      if (iequals(r.address, address)) {
        if (!diagnostic.empty()) r.diagnostic += (r.diagnostic.empty() ? "" : " ") + diagnostic;
        return;
      }
    }
    out.recipients.push_back({std::move(address), std::move(diagnostic)});
  };

  for (std::size_t i = 0; i < cut; ++i) {
    std::string_view rest;
    std::string address = leading_address(lines[i], rest);
    bool inline_phrase = false;
    if (address.empty()) {
      address = address_after_phrase(lines[i]);
      inline_phrase = !address.empty();
    }
    if (address.empty()) continue;
    std::string diagnostic(inline_phrase ? std::string_view() : rest);
    std::size_t taken = 0;
    for (std::size_t j = i + 1; j < cut && taken < max_diagnostic_lines; ++j, ++taken) {
      if (is_blank(lines[j])) break;
      std::string_view ignored;
      if (!leading_address(lines[j], ignored).empty()) break;
      if (!diagnostic.empty()) diagnostic += ' ';
      diagnostic += trim(lines[j]);
    }
    add(std::move(address), std::move(diagnostic));
  }
  // A recipient whose own lines carry no code gets the notice's coded line, when the
  // notice concerns a single recipient (otherwise it could belong to another).
  if (out.recipients.size() == 1 && !carries_code(out.recipients.front().diagnostic) &&
      !out.fallback_diagnostic.empty()) {
    auto& d = out.recipients.front().diagnostic;
    d = d.empty() ? out.fallback_diagnostic : d + " " + out.fallback_diagnostic;
  }
  return out;
}

}  // namespace kurier::bounce
