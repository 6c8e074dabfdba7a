// Reading the text inside bounce messages (internal to bounce/): RFC 822-style field
// blocks (delivery-status, feedback-report, returned headers), addresses, and the
// scraping of non-standard NDR prose for recipients and diagnostics. Pure; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::bounce {

struct Field {
  std::string name;
  std::string value;  // unfolded, trimmed
};
using FieldBlock = std::vector<Field>;

// Blocks of "Name: value" lines separated by blank lines; continuation lines unfolded;
// lines that are not fields are skipped. LF or CRLF.
std::vector<FieldBlock> parse_field_blocks(std::string_view text);
// The first value of `name` (case-insensitive), "" if absent.
std::string field(const FieldBlock& block, std::string_view name);

// "Name <a@b>" -> "a@b"; "a@b" -> "a@b"; text without an address -> "".
std::string extract_address(std::string_view text);
// "<id@host>" -> "id@host"; without brackets the text itself.
std::string_view extract_angle(std::string_view text);

struct ScrapedRecipient {
  std::string address;
  std::string diagnostic;  // the lines that follow the address in the notice
};
struct ScrapedNdr {
  std::vector<ScrapedRecipient> recipients;
  std::string fallback_diagnostic;  // the first line carrying a reply code, if any
  FieldBlock returned_headers;      // headers of a message returned inline, after a marker
  bool delayed = false;             // the prose says delivery is still being retried
};
// Scrapes the prose of an NDR in the styles of qmail, Exim, Postfix, Sendmail,
// Exchange, Gmail, Yahoo, OpenSMTPD, Courier and the like.
ScrapedNdr scrape_ndr(std::string_view text, std::size_t max_diagnostic_lines);

}  // namespace kurier::bounce
