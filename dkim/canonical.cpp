// Wire-form message parsing and RFC 6376 relaxed header and body canonicalisation.
// Pure functions on the signing thread; no allocation beyond the field list.
// Fails with SignError for a message without a header/body separator.
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <bit>
#include <string>

#include "common/text.h"
#include "dkim/detail.h"

namespace kurier::dkim::detail {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

}  // namespace

bool is_signed_header(std::string_view name) {
  for (std::string_view h : kSignedHeaders) {
    if (text::iequals(name, h)) return true;
  }
  return false;
}

ParsedMessage parse_message(std::string_view wire) {
  ParsedMessage message;
  parse_message(wire, message);
  return message;
}

void parse_message(std::string_view wire, ParsedMessage& message) {
  message.fields.clear();
  std::size_t pos = 0;
  for (;;) {
    if (wire.substr(pos, 2) == "\r\n") {
      message.body = wire.substr(pos + 2);
      return;
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
  // Written through a pointer into room for the whole field (the canonical form is never
  // longer): a push_back per character costs a capacity check each.
  const std::size_t old_size = out.size();
  out.resize(old_size + field.size() + 1);
  char* dst = out.data() + old_size;
  for (char c : name) *dst++ = text::lower_char(c);
  *dst++ = ':';
  bool started = false;  // leading WSP of the value is dropped
  bool space = false;    // a WSP run is pending: written as one SP before the next character
  for (char c : field.substr(colon + 1)) {
    if (c == '\r' || c == '\n') continue;  // unfold: the CRLF of a fold always precedes WSP
    if (is_wsp(c)) {
      space = started;
      continue;
    }
    if (space) *dst++ = ' ';
    space = false;
    started = true;
    *dst++ = c;
  }
  out.resize(static_cast<std::size_t>(dst - out.data()));
}

namespace {

// True if line (without its CRLF) is empty once canonicalised: un-stuffed, no WSP left.
bool blank_line(std::string_view line) {
  if (!line.empty() && line.front() == '.') line.remove_prefix(1);
  for (char c : line) {
    if (!is_wsp(c)) return false;
  }
  return true;
}

// `body` without the lines at its end that canonicalise to empty lines (RFC 6376
// §3.4.4 drops them). Lines end at CRLF, as everywhere in the body; a last line
// without CRLF counts as a line.
std::string_view without_trailing_blank_lines(std::string_view body) {
  std::size_t end = body.size();
  while (end > 0) {
    const std::size_t line_end = body.substr(0, end).ends_with("\r\n") ? end - 2 : end;
    const std::size_t crlf = line_end >= 2 ? body.rfind("\r\n", line_end - 2) : std::string_view::npos;
    const std::size_t line_start = crlf == std::string_view::npos ? 0 : crlf + 2;
    if (!blank_line(body.substr(line_start, line_end - line_start))) break;
    end = line_start;
  }
  return body.substr(0, end);
}

bool wsp_or_cr(char c) { return is_wsp(c) || c == '\r'; }

// The first offset at or after `pos` in text[0, size) where canonicalisation may change
// the text: a TAB, an SP followed by WSP or CR (a run to shorten, or WSP before a line
// end), or an LF followed by '.' (a stuffed dot after CRLF). Everything else, nearly
// all of a message, is copied as it is, so it is skipped 16 bytes at a time.
std::size_t next_candidate(const char* text, std::size_t pos, std::size_t size) {
#if defined(__SSE2__)
  const __m128i sp = _mm_set1_epi8(' ');
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i dot = _mm_set1_epi8('.');
  for (; pos + 17 <= size; pos += 16) {  // `next` reads one byte further
    const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text + pos));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text + pos + 1));
    const __m128i next_wsp_or_cr =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(next, sp), _mm_cmpeq_epi8(next, tab)), _mm_cmpeq_epi8(next, cr));
    const __m128i hits = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(here, tab), _mm_and_si128(_mm_cmpeq_epi8(here, sp), next_wsp_or_cr)),
        _mm_and_si128(_mm_cmpeq_epi8(here, lf), _mm_cmpeq_epi8(next, dot)));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hits));
    if (mask != 0) return pos + static_cast<std::size_t>(std::countr_zero(mask));
  }
#endif
  for (; pos < size; ++pos) {
    const char c = text[pos];
    const bool last = pos + 1 == size;
    if (c == '\t' || (c == ' ' && (last || wsp_or_cr(text[pos + 1]))) || (c == '\n' && !last && text[pos + 1] == '.'))
      return pos;
  }
  return size;
}

}  // namespace

void relaxed_body(std::string_view body, BodySink sink, void* context) {
  std::string_view text = without_trailing_blank_lines(body);
  if (text.empty()) return;
  const bool add_crlf = !text.ends_with("\r\n");
  if (add_crlf) {
    while (is_wsp(text.back())) text.remove_suffix(1);  // the last line is not blank: never empties text
  }
  const char* data = text.data();
  const std::size_t size = text.size();
  std::size_t copied = 0;  // text[copied, pos) is canonical and not yet passed on
  auto pass_until = [&](std::size_t end) {
    if (end > copied) sink(context, std::string_view(data + copied, end - copied));
  };
  std::size_t pos = 0;
  if (data[0] == '.') copied = pos = 1;  // un-stuff the first line
  for (;;) {
    pos = next_candidate(data, pos, size);
    if (pos == size) break;
    if (data[pos] == '\n') {  // LF then '.'
      if (pos > 0 && data[pos - 1] == '\r') {
        pass_until(pos + 1);
        copied = pos + 2;  // un-stuff: drop the '.'
      }
      pos += 2;
      continue;
    }
    std::size_t run_end = pos;  // a WSP run starts at pos
    while (run_end < size && is_wsp(data[run_end])) ++run_end;
    const bool at_line_end = run_end == size || text.substr(run_end, 2) == "\r\n";
    if (at_line_end) {
      pass_until(pos);  // WSP at a line end is dropped
      copied = run_end;
    } else if (run_end - pos > 1 || data[pos] == '\t') {
      pass_until(pos);
      sink(context, " ");
      copied = run_end;
    }  // else a single SP before a lone CR: already canonical
    pos = run_end;
  }
  pass_until(size);
  if (add_crlf) sink(context, "\r\n");
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
