// Unit tests for the streaming CSV reader: RFC 4180 quoting, line ends, BOM, line
// numbers, errors with file and line, record limits and chunked reading of large input.
#include "engine/intake/csv.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "engine/core/input_error.h"

namespace kurier::engine {
namespace {

using Record = std::vector<std::string>;

struct Row {
  Record fields;
  std::size_t line;
  bool operator==(const Row&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Row& row) {
  os << row.line << ":";
  for (const std::string& f : row.fields) os << " [" << f << "]";
  return os;
}

std::vector<Row> read_all(const std::string& text, const std::string& file = "recipients.csv") {
  std::istringstream in(text);
  CsvReader reader(in, file);
  std::vector<Row> rows;
  Record fields;
  while (reader.next(fields)) rows.push_back({fields, reader.line()});
  return rows;
}

// Runs the reader to the expected error and returns it.
InputError read_error(const std::string& text, const std::string& file = "recipients.csv") {
  try {
    (void)read_all(text, file);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "expected InputError";
  return InputError("", 0, "", "");
}

TEST(Csv, PlainRecords) {
  EXPECT_EQ(read_all("email,name\na@x,Ann\nb@x,Bo\n"),
            (std::vector<Row>{{{"email", "name"}, 1}, {{"a@x", "Ann"}, 2}, {{"b@x", "Bo"}, 3}}));
  // Missing final line break, empty fields.
  EXPECT_EQ(read_all("a,,c\n,\nlast,"),
            (std::vector<Row>{{{"a", "", "c"}, 1}, {{"", ""}, 2}, {{"last", ""}, 3}}));
  EXPECT_TRUE(read_all("").empty());
}

TEST(Csv, QuotedFieldsEscapesAndCommas) {
  EXPECT_EQ(read_all("\"a@x\",\"Smith, Ann\",\"say \"\"hi\"\"\",\"\",\"\"\"\"\n"),
            (std::vector<Row>{{{"a@x", "Smith, Ann", "say \"hi\"", "", "\""}, 1}}));
  // A quote inside an unquoted field is kept as is.
  EXPECT_EQ(read_all("5'10\",x\n"), (std::vector<Row>{{{"5'10\"", "x"}, 1}}));
  // Quoted field at the end of input without a line break.
  EXPECT_EQ(read_all("a,\"b\""), (std::vector<Row>{{{"a", "b"}, 1}}));
}

TEST(Csv, EmbeddedNewlinesKeepLineNumbersRight) {
  const auto rows = read_all("email,note\na@x,\"line one\nline two\nline three\"\nb@x,plain\nc@x,\"x\r\ny\"\r\nd@x,z\n");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1], (Row{{"a@x", "line one\nline two\nline three"}, 2}));
  EXPECT_EQ(rows[2], (Row{{"b@x", "plain"}, 5}));
  EXPECT_EQ(rows[3], (Row{{"c@x", "x\r\ny"}, 6}));
  EXPECT_EQ(rows[4], (Row{{"d@x", "z"}, 8}));
}

TEST(Csv, CrlfAndLfGiveTheSameRecords) {
  const auto lf = read_all("email,name\na@x,Ann\n\nb@x,\"B\"\n");
  const auto crlf = read_all("email,name\r\na@x,Ann\r\n\r\nb@x,\"B\"\r\n");
  EXPECT_EQ(lf, crlf);
  EXPECT_EQ(lf.back(), (Row{{"b@x", "B"}, 4}));
  // Old Mac line ends (lone CR).
  EXPECT_EQ(read_all("a,b\rc,d\r"), (std::vector<Row>{{{"a", "b"}, 1}, {{"c", "d"}, 2}}));
}

TEST(Csv, ByteOrderMarkIsSkipped) {
  EXPECT_EQ(read_all("\xEF\xBB\xBF" "email,name\na@x,Ann\n"),
            (std::vector<Row>{{{"email", "name"}, 1}, {{"a@x", "Ann"}, 2}}));
  EXPECT_EQ(read_all("\xEF\xBB\xBF\"email\"\n"), (std::vector<Row>{{{"email"}, 1}}));
  EXPECT_TRUE(read_all("\xEF\xBB\xBF").empty());
  // Only at the start of the file.
  EXPECT_EQ(read_all("a\n\xEF\xBB\xBF" "b\n")[1].fields[0], "\xEF\xBB\xBF" "b");
}

TEST(Csv, BlankLinesAreSkipped) {
  EXPECT_EQ(read_all("\n\r\nemail\n\n\na@x\r\n\r\n\nb@x\n\n"),
            (std::vector<Row>{{{"email"}, 3}, {{"a@x"}, 6}, {{"b@x"}, 9}}));
  EXPECT_TRUE(read_all("\n\n\r\n").empty());
}

TEST(Csv, ReusesTheCallersVector) {
  std::istringstream in("a,b,c\nd\ne,f\n");
  CsvReader reader(in, "f.csv");
  Record fields = {"stale", "stale", "stale", "stale", "stale"};
  ASSERT_TRUE(reader.next(fields));
  EXPECT_EQ(fields, (Record{"a", "b", "c"}));
  ASSERT_TRUE(reader.next(fields));
  EXPECT_EQ(fields, (Record{"d"}));
  ASSERT_TRUE(reader.next(fields));
  EXPECT_EQ(fields, (Record{"e", "f"}));
  EXPECT_FALSE(reader.next(fields));
  EXPECT_FALSE(reader.next(fields));
  EXPECT_EQ(reader.file_name(), "f.csv");
}

TEST(Csv, UnterminatedQuoteNamesFileAndLine) {
  const InputError e = read_error("email,name\na@x,Ann\nb@x,\"Bo\nmore\nand more\n", "lists/june.csv");
  EXPECT_EQ(e.file(), "lists/june.csv");
  EXPECT_EQ(e.line(), 3u);  // where the quoted field opened
  EXPECT_NE(std::string(e.what()).find("lists/june.csv:3"), std::string::npos) << e.what();
  EXPECT_EQ(read_error("\"").line(), 1u);
}

TEST(Csv, TextAfterClosingQuoteIsAnError) {
  const InputError e = read_error("email,name\na@x,\"Ann\"x\n", "r.csv");
  EXPECT_EQ(e.file(), "r.csv");
  EXPECT_EQ(e.line(), 2u);
  EXPECT_EQ(read_error("a\n\"multi\nline\" junk,b\n").line(), 3u);
  EXPECT_EQ(read_error("\"a\"\"b\"c\n").line(), 1u);
}

TEST(Csv, OverlongRecordIsAnError) {
  const std::string max_field(CsvReader::kMaxRecordBytes, 'x');
  // Exactly at the limit is fine.
  const auto rows = read_all("email\n" + max_field + "\nnext\n");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].fields[0].size(), CsvReader::kMaxRecordBytes);
  EXPECT_EQ(rows[2], (Row{{"next"}, 3}));
  // One byte over, unquoted, quoted, and spread over fields.
  EXPECT_EQ(read_error("email\n" + max_field + "y\n", "big.csv").line(), 2u);
  EXPECT_EQ(read_error("email\n\"" + max_field + "\"\n").line(), 2u);
  std::string many_fields;
  while (many_fields.size() <= CsvReader::kMaxRecordBytes) many_fields += "abc,";
  EXPECT_EQ(read_error("email\n\n" + many_fields + "\n").line(), 3u);
  // An endless quoted field stops at the limit, not at the end of input.
  EXPECT_EQ(read_error("a,\"" + std::string(10 * CsvReader::kMaxRecordBytes, '\n')).line(), 1u);
}

TEST(Csv, RecordsAcrossEveryBufferBoundaryOffset) {
  // A padding record of about one read chunk (kMaxRecordBytes, 64 KiB, is also the
  // chunk size today) followed by quoted, escaped and CRLF-terminated records, with
  // the padding length swept so each delimiter lands on the chunk boundary.
  for (std::size_t shift = 0; shift < 12; ++shift) {
    const std::string pad(CsvReader::kMaxRecordBytes - shift, 'p');
    const std::string text = pad + "\r\n\"q,\"\"x\"\"\r\ny\",b\r\n\"\"\r\nc\r\n";
    const auto rows = read_all(text);
    ASSERT_EQ(rows.size(), 4u) << shift;
    EXPECT_EQ(rows[0].fields[0].size(), pad.size());
    EXPECT_EQ(rows[1], (Row{{"q,\"x\"\r\ny", "b"}, 2})) << shift;
    EXPECT_EQ(rows[2], (Row{{""}, 4})) << shift;
    EXPECT_EQ(rows[3], (Row{{"c"}, 5})) << shift;
  }
}

TEST(Csv, LargeInputIsReadInChunks) {
  constexpr std::size_t kRows = 100'000;
  std::string text = "\xEF\xBB\xBF" "email,name,note\r\n";
  std::vector<std::size_t> expected_line;
  std::size_t line = 2;
  for (std::size_t i = 0; i < kRows; ++i) {
    expected_line.push_back(line);
    const std::string n = std::to_string(i);
    switch (i % 4) {
      case 0:
        text += "user" + n + "@example.com,Name " + n + ",plain\r\n";
        break;
      case 1:
        text += "\"user" + n + "@example.com\",\"Last, First " + n + "\",\"say \"\"" + n + "\"\"\"\n";
        break;
      case 2:
        text += "user" + n + "@example.com,N" + n + ",\"two\nlines " + n + "\"\r\n";
        ++line;
        break;
      default:
        text += "user" + n + "@example.com,,\n\n";  // followed by a blank line
        ++line;
        break;
    }
    ++line;
  }
  ASSERT_GT(text.size(), 40 * CsvReader::kMaxRecordBytes);  // many chunks

  std::istringstream in(text);
  CsvReader reader(in, "big.csv");
  Record fields;
  ASSERT_TRUE(reader.next(fields));
  ASSERT_EQ(fields, (Record{"email", "name", "note"}));
  for (std::size_t i = 0; i < kRows; ++i) {
    ASSERT_TRUE(reader.next(fields)) << i;
    const std::string n = std::to_string(i);
    ASSERT_EQ(fields.size(), 3u) << i;
    ASSERT_EQ(fields[0], "user" + n + "@example.com") << i;
    switch (i % 4) {
      case 0:
        ASSERT_EQ(fields[1], "Name " + n);
        ASSERT_EQ(fields[2], "plain");
        break;
      case 1:
        ASSERT_EQ(fields[1], "Last, First " + n);
        ASSERT_EQ(fields[2], "say \"" + n + "\"");
        break;
      case 2:
        ASSERT_EQ(fields[1], "N" + n);
        ASSERT_EQ(fields[2], "two\nlines " + n);
        break;
      default:
        ASSERT_EQ(fields[1], "");
        ASSERT_EQ(fields[2], "");
        break;
    }
    ASSERT_EQ(reader.line(), expected_line[i]) << i;
  }
  EXPECT_FALSE(reader.next(fields));
}

}  // namespace
}  // namespace kurier::engine
