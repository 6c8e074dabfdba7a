// A streaming RFC 4180 CSV reader for recipients.csv: comma-separated, fields
// optionally in double quotes ("" for a quote inside), CRLF or LF line ends, a
// UTF-8 BOM at the start ignored. Quoted fields may span lines (the caller then
// refuses them as header injection, with the line number). Reads in chunks: memory
// does not grow with the file. Not thread-safe.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::engine {

class CsvReader {
 public:
  // Defend against hostile files: a longer record is an InputError.
  static constexpr std::size_t kMaxRecordBytes = 64 * 1024;

  CsvReader(std::istream& in, std::string file_name);

  // Reads the next record into `fields` (replacing its contents). Returns false at
  // end of input. Blank lines are skipped. Throws InputError (file, line) on an
  // unterminated quote, text after a closing quote, or an overlong record.
  bool next(std::vector<std::string>& fields);

  // 1-based line on which the last record returned by next() started.
  std::size_t line() const { return record_line_; }
  const std::string& file_name() const { return file_name_; }

 private:
  // Read size: large enough that a BOM and typical records arrive in one chunk,
  // small enough that memory stays flat for any file size.
  static constexpr std::size_t kChunkBytes = 64 * 1024;
  static constexpr int kEnd = -1;  // peek() at end of input

  bool fill();
  int peek();                  // next byte (0..255) or kEnd; refills the buffer
  void consume_line_break();   // at '\r' or '\n': CRLF, LF or lone CR; counts the line
  void count_bytes(std::size_t n, std::size_t* record_bytes) const;  // enforces kMaxRecordBytes
  std::istream& in_;
  std::string file_name_;
  std::string buffer_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  std::size_t line_ = 1;
  std::size_t record_line_ = 0;
  bool started_ = false;  // BOM check done
};

// The column of the recipient address in a header row just read by `csv`: the first
// whose trimmed name equals one of `names` (ASCII case-insensitive). Throws InputError
// naming the file, the header's line and the first name when none does.
std::size_t address_column(const std::vector<std::string>& header, const CsvReader& csv,
                           std::initializer_list<std::string_view> names = {"email"});

}  // namespace kurier::engine
