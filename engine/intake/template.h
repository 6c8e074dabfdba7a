// Message templates: an RFC 5322 message with {{field}} placeholders, compiled once
// per campaign and rendered per recipient straight into SMTP wire form (CRLF line
// endings, dot-stuffed), without copying the campaign per message.
//
// Rules:
//   - Placeholders are {{name}} with optional spaces ({{ name }}); names are the
//     recipients.csv column names (case-sensitive). An unknown name is an InputError
//     naming the template file and line. "{{" not followed by a valid placeholder is
//     kept literally.
//   - Values must not contain CR or LF (intake refuses them: header injection).
//   - In header fields, a value with non-ASCII bytes is written as an RFC 2047
//     encoded-word (=?UTF-8?B?...?=); in the body it is written as is.
//   - Line endings of the template are normalised to CRLF; lines starting with '.'
//     (in the template or produced by a value at the start of a line) are stuffed.
// Thread-safe after compile (render is const).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::engine {

class Template {
 public:
  // Throws InputError (file = `file_name`) for unknown placeholders or a template
  // without a header/body separator.
  static Template compile(std::string_view text, const std::vector<std::string>& field_names,
                          const std::string& file_name = "template.eml");

  // Appends the rendered message to `out`: `extra_headers` (complete header lines,
  // each ending in CRLF, e.g. Message-ID) first, then the template with values[i]
  // substituted for field i. Wire form, without the final ".\r\n".
  void render(std::span<const std::string_view> values, std::string_view extra_headers, std::string& out) const;

  // True if the template's header block has this field (case-insensitive name).
  bool has_header(std::string_view name) const;
  // True if the template has 8-bit bytes (values may add more; see needs_8bit).
  bool eight_bit() const { return eight_bit_; }
  // Names of the fields used, in first-use order.
  const std::vector<std::string>& used_fields() const { return used_fields_; }
  // Rendered size without values, for buffer reservation.
  std::size_t literal_size() const { return literal_size_; }

 private:
  struct Compiler;  // builds segments_ line by line (template.cpp)
  struct Segment {
    std::string literal;         // wire-form text (used when field < 0)
    int field = -1;              // index into values
    bool in_header = false;      // value goes into a header field: encode non-ASCII
    // A field that opens its template line, or any segment preceded on its line only
    // by fields: a leading '.' is stuffed at render time when the output is at a line
    // start. (Literals that open a line are stuffed at compile time.)
    bool at_line_start = false;
  };
  std::vector<Segment> segments_;
  std::vector<std::string> header_names_;  // lower-case
  std::vector<std::string> used_fields_;
  std::size_t literal_size_ = 0;
  std::size_t field_count_ = 0;  // 1 + the highest field index used: render checks values.size()
  bool eight_bit_ = false;
};

}  // namespace kurier::engine
