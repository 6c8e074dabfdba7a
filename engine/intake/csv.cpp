// Streaming RFC 4180 reader for recipients.csv: one record per next(), a fixed-size
// chunk buffer. Runs on the intake thread (not thread-safe).
// Malformed input and read errors throw InputError with the file and line.
#include "engine/intake/csv.h"

#include <string_view>

#include "common/text.h"
#include "engine/core/input_error.h"

namespace kurier::engine {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

}  // namespace

CsvReader::CsvReader(std::istream& in, std::string file_name) : in_(in), file_name_(std::move(file_name)) {}

bool CsvReader::fill() {
  if (eof_) return false;
  // Only called once the buffer is consumed: fields are copied out as they are read,
  // so nothing in the old chunk is needed any more.
  buffer_.resize(kChunkBytes);
  in_.read(buffer_.data(), static_cast<std::streamsize>(kChunkBytes));
  const auto got = static_cast<std::size_t>(in_.gcount());
  if (in_.bad()) throw InputError(file_name_, line_, "", "read error");
  buffer_.resize(got);
  pos_ = 0;
  if (got == 0) {
    eof_ = true;
    return false;
  }
  return true;
}

int CsvReader::peek() {
  if (pos_ == buffer_.size() && !fill()) return kEnd;
  return static_cast<unsigned char>(buffer_[pos_]);
}

void CsvReader::consume_line_break() {
  // CRLF, LF, or a lone CR (old Mac exports): each counts as one line.
  if (buffer_[pos_++] == '\r' && peek() == '\n') ++pos_;
  ++line_;
}

void CsvReader::count_bytes(std::size_t n, std::size_t* record_bytes) const {
  *record_bytes += n;
  if (*record_bytes > kMaxRecordBytes) {
    throw InputError(file_name_, record_line_, "",
                     "record longer than " + std::to_string(kMaxRecordBytes) + " bytes");
  }
}

bool CsvReader::next(std::vector<std::string>& fields) {
  if (!started_) {
    started_ = true;
    // The BOM is at most 3 bytes and a chunk is far larger: it is whole in the first.
    if (peek() != kEnd && std::string_view(buffer_).starts_with(kUtf8Bom)) pos_ += kUtf8Bom.size();
  }
  // Skip blank lines.
  for (int c = peek(); c == '\r' || c == '\n'; c = peek()) consume_line_break();
  if (peek() == kEnd) return false;

  record_line_ = line_;
  std::size_t record_bytes = 0;
  std::size_t count = 0;
  for (;;) {
    // Reuse the caller's strings: their capacity survives from record to record.
    if (count == fields.size()) fields.emplace_back();
    std::string& field = fields[count++];
    field.clear();

    if (peek() == '"') {
      const std::size_t quote_line = line_;
      ++pos_;
      count_bytes(1, &record_bytes);
      for (;;) {
        if (peek() == kEnd) throw InputError(file_name_, quote_line, "", "unterminated quoted field");
        // Copy the run up to the next quote or line break in one go.
        std::size_t end = pos_;
        while (end < buffer_.size() && buffer_[end] != '"' && buffer_[end] != '\r' && buffer_[end] != '\n') ++end;
        if (end > pos_) {
          count_bytes(end - pos_, &record_bytes);
          field.append(buffer_, pos_, end - pos_);
          pos_ = end;
          continue;
        }
        const char c = buffer_[pos_++];
        count_bytes(1, &record_bytes);
        if (c == '"') {
          if (peek() != '"') break;  // closing quote
          ++pos_;
          count_bytes(1, &record_bytes);
          field.push_back('"');
        } else if (c == '\n') {
          field.push_back('\n');
          ++line_;
        } else {  // '\r': a line of its own unless CRLF (then the '\n' counts)
          field.push_back('\r');
          if (peek() != '\n') ++line_;
        }
      }
      const int after = peek();
      if (after != ',' && after != '\r' && after != '\n' && after != kEnd) {
        throw InputError(file_name_, line_, "", "text after the closing quote of a field");
      }
    } else {
      for (;;) {
        if (peek() == kEnd) break;
        std::size_t end = pos_;
        while (end < buffer_.size() && buffer_[end] != ',' && buffer_[end] != '\r' && buffer_[end] != '\n') ++end;
        count_bytes(end - pos_, &record_bytes);
        field.append(buffer_, pos_, end - pos_);
        pos_ = end;
        if (end < buffer_.size()) break;  // stopped at a delimiter, not at the chunk end
      }
    }

    const int delimiter = peek();
    if (delimiter == ',') {
      ++pos_;
      count_bytes(1, &record_bytes);
      continue;
    }
    if (delimiter != kEnd) consume_line_break();
    break;
  }
  fields.resize(count);
  return true;
}

std::size_t address_column(const std::vector<std::string>& header, const CsvReader& csv,
                           std::initializer_list<std::string_view> names) {
  for (std::size_t i = 0; i < header.size(); ++i)
    for (auto name : names)
      if (text::iequals(text::trim(header[i]), name)) return i;
  std::string wanted;
  for (auto name : names) wanted += (wanted.empty() ? "\"" : " or \"") + std::string(name) + "\"";
  throw InputError(csv.file_name(), csv.line(), std::string(*names.begin()), "header has no " + wanted + " column");
}

}  // namespace kurier::engine
