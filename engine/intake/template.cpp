// Template compilation (once per campaign) and rendering (once per message) into SMTP
// wire form. compile runs on the intake thread; render is const and runs on any worker.
// compile throws InputError for bad templates; render only throws for a caller bug.
#include "engine/intake/template.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>

#include "common/text.h"
#include "engine/core/input_error.h"

namespace kurier::engine {
namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kOpen = "{{";
constexpr std::string_view kClose = "}}";
// RFC 2047 §2: an encoded-word is at most 75 characters, and a header line holding
// one at most 76. 45 input bytes give 60 base64 characters plus the 12 of
// "=?UTF-8?B?" and "?=": 72, and 73 after the folding space.
constexpr std::size_t kEncodedWordInputBytes = 45;
constexpr std::size_t kEncodedWordLineLimit = 76;
constexpr std::size_t kEncodedWordFraming = 12;
// Smallest chunk: one whole UTF-8 character (up to 4 bytes) must fit, even when the
// template puts the placeholder so far right that the first line runs over.
constexpr std::size_t kMinEncodedWordInputBytes = 4;
// Between two encoded-words: folding whitespace, so long values keep header lines
// short; a continuation line starts with a space and never opens a new header field.
constexpr std::string_view kEncodedWordSeparator = "\r\n ";
constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// LF, CRLF and lone CR all become CRLF; the result ends in CRLF so that the caller
// can append the ".\r\n" terminator.
std::string normalise_line_endings(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 16 + 2);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out += kCrlf;
    } else if (c == '\n') {
      out += kCrlf;
    } else {
      out.push_back(c);
    }
  }
  // (An empty text stays empty: it has no separator and is refused.)
  if (!out.empty() && !std::string_view(out).ends_with(kCrlf)) out += kCrlf;
  return out;
}

// The lines of wire-form text, without their CRLF (`wire` ends in CRLF).
std::vector<std::string_view> split_lines(std::string_view wire) {
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < wire.size();) {
    const std::size_t eol = wire.find(kCrlf, pos);
    lines.push_back(wire.substr(pos, eol - pos));
    pos = eol + kCrlf.size();
  }
  return lines;
}

// The number of header lines: those before the first empty line, which must exist.
std::size_t header_line_count(const std::vector<std::string_view>& lines, const std::string& file_name) {
  const auto separator = std::find_if(lines.begin(), lines.end(), [](std::string_view l) { return l.empty(); });
  if (separator == lines.end()) {
    throw InputError(file_name, 0, "", "no empty line between the header fields and the body");
  }
  return static_cast<std::size_t>(separator - lines.begin());
}

// The lower-case names of the header fields, each once; a line that is neither a
// field nor a folded continuation is an InputError.
std::vector<std::string> header_field_names(const std::vector<std::string_view>& lines, std::size_t header_lines,
                                            const std::string& file_name) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < header_lines; ++i) {
    const std::string_view line = lines[i];
    if (is_blank(line.front())) continue;  // folded continuation of the previous field
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      throw InputError(file_name, i + 1, "", "header line without ':' (is the empty line after the headers missing?)");
    }
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && is_blank(name.back())) name.remove_suffix(1);
    std::string lower = text::lower_ascii(name);
    if (std::find(names.begin(), names.end(), lower) == names.end()) names.push_back(std::move(lower));
  }
  return names;
}

// Parses a placeholder at line[pos] (which starts with "{{"). Returns the trimmed
// name and sets *end past "}}", or returns an empty view when the text there is not a
// placeholder (kept literally). A name is any run of bytes other than braces and line
// breaks, with surrounding blanks trimmed, so that column names such as "first name"
// work.
std::string_view parse_placeholder(std::string_view line, std::size_t pos, std::size_t* end) {
  std::size_t i = pos + kOpen.size();
  const std::size_t name_start = i;
  while (i < line.size() && line[i] != '{' && line[i] != '}') ++i;
  if (line.compare(i, kClose.size(), kClose) != 0) return {};
  std::string_view name = line.substr(name_start, i - name_start);
  while (!name.empty() && is_blank(name.front())) name.remove_prefix(1);
  while (!name.empty() && is_blank(name.back())) name.remove_suffix(1);
  if (name.empty()) return {};
  *end = i + kClose.size();
  return name;
}

void append_base64(std::string& out, const unsigned char* data, std::size_t size) {
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kBase64Alphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 6) & 0x3F]);
    out.push_back(kBase64Alphabet[v & 0x3F]);
  }
  if (i < size) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (i + 1 < size) v |= std::uint32_t{data[i + 1]} << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 0x3F]);
    out.push_back(kBase64Alphabet[(v >> 12) & 0x3F]);
    out.push_back(i + 1 < size ? kBase64Alphabet[(v >> 6) & 0x3F] : '=');
    out.push_back('=');
  }
}

// Encoded-words of at most kEncodedWordInputBytes of the value each, cut on UTF-8
// character boundaries (RFC 2047 §5: a word holds whole characters), the first one
// sized to the room left on the current line. CR and LF become spaces.
void append_encoded_words(std::string& out, std::string_view value) {
  std::array<unsigned char, kEncodedWordInputBytes> chunk{};
  const std::size_t line_start = out.rfind('\n') + 1;  // npos + 1 == 0
  const std::size_t column = out.size() - line_start;
  std::size_t chunk_limit = kMinEncodedWordInputBytes;
  if (column + kEncodedWordFraming < kEncodedWordLineLimit) {
    chunk_limit = std::clamp((kEncodedWordLineLimit - column - kEncodedWordFraming) / 4 * 3,
                             kMinEncodedWordInputBytes, kEncodedWordInputBytes);
  }
  std::size_t start = 0;
  while (start < value.size()) {
    std::size_t end = std::min(value.size(), start + chunk_limit);
    chunk_limit = kEncodedWordInputBytes;
    if (end < value.size()) {
      // Back off to the lead byte of a character cut in half (at most 3 bytes: the
      // longest UTF-8 sequence is 4; invalid input is simply cut).
      std::size_t back = end;
      for (int k = 0; k < 3 && back > start + 1 && (static_cast<unsigned char>(value[back]) & 0xC0) == 0x80; ++k) {
        --back;
      }
      if ((static_cast<unsigned char>(value[back]) & 0xC0) != 0x80) end = back;
    }
    const std::size_t n = end - start;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = value[start + i];
      chunk[i] = static_cast<unsigned char>((c == '\r' || c == '\n') ? ' ' : c);
    }
    if (start > 0) out += kEncodedWordSeparator;
    out += "=?UTF-8?B?";
    append_base64(out, chunk.data(), n);
    out += "?=";
    start = end;
  }
}

// What render needs to know about a value, found by one scan.
constexpr std::uint8_t kValueScanned = 1;
constexpr std::uint8_t kValueLineBreak = 2;
constexpr std::uint8_t kValueNonAscii = 4;
// Fields whose scan result render caches on the stack: a value used on every line
// of a 5 KB body is then scanned once, not once per use. Fields beyond this index
// (unusual) are scanned at each use.
constexpr std::size_t kScanCacheFields = 64;

std::uint8_t scan_value(std::string_view value) {
  std::uint8_t line_break = 0;
  std::uint8_t non_ascii = 0;
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    line_break |= static_cast<std::uint8_t>(u == '\r' || u == '\n');
    non_ascii |= static_cast<std::uint8_t>(u >> 7);
  }
  return static_cast<std::uint8_t>(kValueScanned | (line_break ? kValueLineBreak : 0) |
                                   (non_ascii ? kValueNonAscii : 0));
}

// Appends a value: CR/LF replaced by spaces (never a new line, so never a new header
// field or an unstuffed '.' line), non-ASCII header values as encoded-words, and a
// leading '.' stuffed when the value opens a line. `scan` is scan_value(value).
void append_value(std::string& out, std::string_view value, std::uint8_t scan, bool in_header, bool at_line_start) {
  if (in_header && (scan & kValueNonAscii) != 0) {
    append_encoded_words(out, value);  // starts with "=?": nothing to stuff
    return;
  }
  if (at_line_start && !value.empty() && value.front() == '.') out.push_back('.');
  if ((scan & kValueLineBreak) == 0) {
    out.append(value);
    return;
  }
  for (const char c : value) out.push_back((c == '\r' || c == '\n') ? ' ' : c);
}

}  // namespace

// Builds a template's segments line by line: literal text is collected until a
// placeholder (or the end) flushes it as one segment.
struct Template::Compiler {
  Template& t;
  const std::vector<std::string>& field_names;
  const std::string& file_name;
  std::vector<int> used_index;  // field index -> position in used_fields_, or -1
  std::string literal;
  // The literal being collected follows placeholders that open its line: whether it
  // needs dot-stuffing is known only at render time.
  bool literal_dynamic = false;

  Compiler(Template& out, const std::vector<std::string>& names, const std::string& file)
      : t(out), field_names(names), file_name(file), used_index(names.size(), -1) {}

  void flush_literal(bool at_line_start) {
    if (literal.empty()) return;
    t.literal_size_ += literal.size();
    Segment s;
    s.literal = std::move(literal);
    s.at_line_start = at_line_start;
    t.segments_.push_back(std::move(s));
    literal.clear();
  }

  // The index of a placeholder's field; an InputError naming the line if unknown.
  std::size_t field_index(std::string_view name, std::size_t line_number) {
    const auto it = std::find(field_names.begin(), field_names.end(), name);
    if (it == field_names.end()) {
      throw InputError(file_name, line_number, std::string(name), "unknown field in template placeholder");
    }
    const auto index = static_cast<std::size_t>(it - field_names.begin());
    if (used_index[index] < 0) {
      used_index[index] = static_cast<int>(t.used_fields_.size());
      t.used_fields_.push_back(*it);
    }
    return index;
  }

  void add_field(std::size_t index, bool in_header, bool at_line_start) {
    flush_literal(literal_dynamic);
    literal_dynamic = false;
    Segment s;
    s.field = static_cast<int>(index);
    s.in_header = in_header;
    s.at_line_start = at_line_start;
    t.segments_.push_back(std::move(s));
    t.field_count_ = std::max(t.field_count_, index + 1);
  }

  void add_line(std::string_view line, std::size_t line_number, bool in_header) {
    // True while nothing but placeholders precedes the current position on this
    // line: what comes next opens the line when those values render empty.
    bool line_open = true;
    if (!line.empty() && line.front() == '.') {
      literal += '.';  // static dot-stuffing of a template line
      line_open = false;
    }
    std::size_t pos = 0;
    auto add_literal = [&](std::string_view piece) {
      if (line_open && pos > 0) literal_dynamic = true;  // literal is empty here: flushed before the field
      line_open = false;
      literal.append(piece);
    };
    while (pos < line.size()) {
      const std::size_t open = line.find(kOpen, pos);
      const std::size_t stop = open == std::string_view::npos ? line.size() : open;
      if (stop > pos) {
        add_literal(line.substr(pos, stop - pos));
        pos = stop;
        continue;
      }
      std::size_t end = 0;
      const std::string_view name = parse_placeholder(line, open, &end);
      if (name.empty()) {
        // Not a placeholder: keep one '{' and look again from the next character,
        // so "{{{name}}}" still finds "{{name}}".
        add_literal("{");
        pos = open + 1;
        continue;
      }
      add_field(field_index(name, line_number), in_header, line_open);
      pos = end;
    }
    literal += kCrlf;
  }
};

Template Template::compile(std::string_view text, const std::vector<std::string>& field_names,
                           const std::string& file_name) {
  const std::string wire = normalise_line_endings(text);
  const std::vector<std::string_view> lines = split_lines(wire);
  const std::size_t header_lines = header_line_count(lines, file_name);
  Template t;
  t.header_names_ = header_field_names(lines, header_lines, file_name);
  Compiler compiler(t, field_names, file_name);
  for (std::size_t i = 0; i < lines.size(); ++i) compiler.add_line(lines[i], i + 1, i < header_lines);
  compiler.flush_literal(compiler.literal_dynamic);
  t.eight_bit_ = std::any_of(wire.begin(), wire.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  return t;
}

void Template::render(std::span<const std::string_view> values, std::string_view extra_headers,
                      std::string& out) const {
  if (values.size() < field_count_) {
    throw std::invalid_argument("Template::render: fewer values than template fields");
  }
  std::size_t value_bytes = 0;
  for (const Segment& s : segments_) {
    if (s.field >= 0) value_bytes += values[static_cast<std::size_t>(s.field)].size();
  }
  // Encoded-words grow a header value by 4/3 plus framing; body values are copied as
  // is. A generous single reservation keeps render to one allocation at most.
  out.reserve(out.size() + extra_headers.size() + literal_size_ + value_bytes + value_bytes / 2 + 64);

  std::array<std::uint8_t, kScanCacheFields> scans{};  // 0: not scanned yet
  out.append(extra_headers);
  const std::size_t message_start = out.size();
  for (const Segment& s : segments_) {
    // Dynamic line start: the output is at the start of a line right now.
    const bool at_line_start = s.at_line_start && (out.size() == message_start || out.back() == '\n');
    if (s.field < 0) {
      if (at_line_start && s.literal.front() == '.') out.push_back('.');
      out.append(s.literal);
      continue;
    }
    const auto field = static_cast<std::size_t>(s.field);
    const std::string_view value = values[field];
    std::uint8_t scan = 0;
    if (field < kScanCacheFields) {
      if (scans[field] == 0) scans[field] = scan_value(value);
      scan = scans[field];
    } else {
      scan = scan_value(value);
    }
    append_value(out, value, scan, s.in_header, at_line_start);
  }
}

bool Template::has_header(std::string_view name) const {
  const std::string lower = text::lower_ascii(name);
  return std::find(header_names_.begin(), header_names_.end(), lower) != header_names_.end();
}

}  // namespace kurier::engine
