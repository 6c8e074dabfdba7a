// Reply parser tests: golden files in tests/smtp/golden (input + expected parse), plus
// incremental feeding, enhanced-code extraction, summary(), to_wire() and outcome_for().
// Runs on the test thread; a missing or unreadable golden file fails the test.
#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "smtp/client.h"
#include "smtp/reply.h"
#include "tests/common/process.h"

namespace kurier::smtp {
namespace {

namespace fs = std::filesystem;

// A golden file: "# comment", optional "endings: lf", "--- input" lines, "--- expect"
// lines ("malformed", or "code:", "enhanced:", "text:" per text line, "lines:").
struct Golden {
  std::string name;
  std::string input;
  bool malformed = false;
  int code = 0;
  std::string enhanced;
  std::vector<std::string> text;
  std::size_t lines = 0;
};

std::string value_of(const std::string& line, std::string_view key) {
  std::string rest = line.substr(key.size());
  if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
  return rest;
}

Golden load_golden(const fs::path& path) {
  Golden g;
  g.name = path.filename().string();
  std::istringstream in(test::read_file(path));
  std::string line;
  std::string eol = "\r\n";
  enum { header, input, expect } section = header;
  while (std::getline(in, line)) {
    if (line == "--- input") {
      section = input;
    } else if (line == "--- expect") {
      section = expect;
    } else if (section == header) {
      if (line == "endings: lf") eol = "\n";
    } else if (section == input) {
      g.input += line + eol;
    } else if (line == "malformed") {
      g.malformed = true;
    } else if (line.starts_with("code:")) {
      g.code = std::stoi(value_of(line, "code:"));
    } else if (line.starts_with("enhanced:")) {
      g.enhanced = value_of(line, "enhanced:");
    } else if (line.starts_with("text:")) {
      g.text.push_back(value_of(line, "text:"));
    } else if (line.starts_with("lines:")) {
      g.lines = std::stoul(value_of(line, "lines:"));
    } else if (!line.empty()) {
      ADD_FAILURE() << g.name << ": unknown expect line: " << line;
    }
  }
  return g;
}

std::vector<fs::path> golden_files() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(test::source_path("tests/smtp/golden"))) {
    if (entry.path().extension() == ".txt") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '\n';
    out += parts[i];
  }
  return out;
}

// Feeds `input` in pieces of the given sizes (cycled); returns the reply, or nullopt
// on error / no complete reply. Also checks that feed() never overruns the reply.
std::optional<Reply> feed_in_pieces(const std::string& input, const std::vector<std::size_t>& sizes) {
  ReplyParser parser;
  std::size_t pos = 0;
  std::size_t k = 0;
  while (pos < input.size()) {
    std::size_t n = std::min(sizes[k++ % sizes.size()], input.size() - pos);
    std::size_t used = parser.feed(std::string_view(input).substr(pos, n));
    EXPECT_LE(used, n);
    pos += used;
    if (parser.error()) return std::nullopt;
    if (parser.ready()) return parser.take();
    EXPECT_EQ(used, n) << "an incomplete reply must consume everything";
  }
  return std::nullopt;
}

void expect_equal(const Reply& a, const Reply& b, const std::string& what) {
  EXPECT_EQ(a.code, b.code) << what;
  EXPECT_EQ(a.enhanced, b.enhanced) << what;
  EXPECT_EQ(a.text, b.text) << what;
  EXPECT_EQ(a.lines, b.lines) << what;
}

TEST(ReplyGolden, FilesPresent) {
  // The golden set covers every case the parser promises; a lost file must show.
  EXPECT_GE(golden_files().size(), 20u);
}

TEST(ReplyGolden, ParseReplyMatchesExpected) {
  for (const auto& path : golden_files()) {
    Golden g = load_golden(path);
    SCOPED_TRACE(g.name);
    auto reply = parse_reply(g.input);
    if (g.malformed) {
      EXPECT_FALSE(reply.has_value());
      continue;
    }
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, g.code);
    EXPECT_EQ(reply->enhanced, g.enhanced);
    EXPECT_EQ(reply->text, join(g.text));
    EXPECT_EQ(reply->lines.size(), g.lines);
    for (const auto& raw : reply->lines) {
      EXPECT_LE(raw.size(), kMaxReplyLineBytes);
      EXPECT_FALSE(raw.ends_with("\r")) << "raw lines are stored without CR";
    }
  }
}

TEST(ReplyGolden, IncrementalFeedingEqualsOneShot) {
  std::mt19937 rng(12345);
  for (const auto& path : golden_files()) {
    Golden g = load_golden(path);
    SCOPED_TRACE(g.name);
    auto one_shot = feed_in_pieces(g.input, {g.input.size()});
    auto byte_by_byte = feed_in_pieces(g.input, {1});
    std::vector<std::size_t> random_sizes;
    for (int i = 0; i < 64; ++i) random_sizes.push_back(1 + rng() % 700);
    auto random_chunks = feed_in_pieces(g.input, random_sizes);
    EXPECT_EQ(one_shot.has_value(), !g.malformed);
    ASSERT_EQ(one_shot.has_value(), byte_by_byte.has_value());
    ASSERT_EQ(one_shot.has_value(), random_chunks.has_value());
    if (one_shot) {
      expect_equal(*one_shot, *byte_by_byte, "byte by byte");
      expect_equal(*one_shot, *random_chunks, "random chunks");
      expect_equal(*one_shot, *parse_reply(g.input), "parse_reply");
    }
  }
}

TEST(ReplyParser, ConsumesExactlyOneReplyAndKeepsTheRest) {
  const std::string stream = "250 2.1.0 Ok\r\n250-2.1.5 Ok\r\n250 2.1.5 more\r\n354 go\r\n";
  ReplyParser parser;
  std::size_t used = parser.feed(stream);
  EXPECT_EQ(used, std::string("250 2.1.0 Ok\r\n").size());
  ASSERT_TRUE(parser.ready());
  EXPECT_EQ(parser.feed("ignored"), 0u) << "a ready parser takes nothing until take()";
  Reply first = parser.take();
  EXPECT_EQ(first.code, 250);
  EXPECT_EQ(first.enhanced, "2.1.0");
  EXPECT_FALSE(parser.ready());

  std::string_view rest = std::string_view(stream).substr(used);
  used = parser.feed(rest);
  ASSERT_TRUE(parser.ready());
  Reply second = parser.take();
  EXPECT_EQ(second.text, "Ok\nmore");
  rest.remove_prefix(used);
  parser.feed(rest);
  ASSERT_TRUE(parser.ready());
  EXPECT_EQ(parser.take().code, 354);
}

TEST(ReplyParser, GarbageSetsErrorAndTakeResets) {
  ReplyParser parser;
  parser.feed("HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(parser.error());
  EXPECT_FALSE(parser.ready());
  parser.take();
  EXPECT_FALSE(parser.error());
  parser.feed("220 hello\r\n");
  ASSERT_TRUE(parser.ready());
  EXPECT_EQ(parser.take().code, 220);
}

TEST(ReplyParser, HugeHostileReplyIsBounded) {
  // A 100 KB line, then many lines: all within kMaxReplyWireBytes, kept text bounded.
  ReplyParser parser;
  std::string chunk(10 * 1024, 'z');
  parser.feed("250-");
  for (int i = 0; i < 10; ++i) parser.feed(chunk);
  parser.feed("\r\n");
  std::string line = "250-" + std::string(1000, 'q') + "\r\n";
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(parser.feed(line), line.size());
  }
  parser.feed("250 end\r\n");
  ASSERT_TRUE(parser.ready());
  Reply r = parser.take();
  EXPECT_LE(r.lines.size(), kMaxReplyLines);
  std::size_t bytes = 0;
  for (const auto& l : r.lines) bytes += l.size();
  EXPECT_LE(bytes, kMaxReplyBytes);
  EXPECT_EQ(r.lines.front().size(), kMaxReplyLineBytes);
  EXPECT_LE(r.text.size(), kMaxReplyBytes + kMaxReplyLines);
}

TEST(ReplyParser, ReplyBeyondTheWireLimitIsAProtocolError) {
  // An endless multi-line reply and a 1 MB line both end in an error, not in reading
  // until the step's timeout; the parser is usable again after take().
  ReplyParser endless;
  const std::string line = "250-this reply never ends\r\n";
  std::size_t fed = 0;
  while (!endless.error() && fed <= 2 * kMaxReplyWireBytes) fed += endless.feed(line);
  EXPECT_TRUE(endless.error());
  EXPECT_FALSE(endless.ready());
  EXPECT_GT(fed, kMaxReplyWireBytes - line.size());
  EXPECT_LE(fed, kMaxReplyWireBytes + line.size());
  endless.take();
  endless.feed("250 ok\r\n");
  ASSERT_TRUE(endless.ready());
  EXPECT_EQ(endless.take().code, 250);

  ReplyParser long_line;
  long_line.feed("550 ");
  const std::string chunk(8 * 1024, 'x');
  for (int i = 0; i < 128 && !long_line.error(); ++i) long_line.feed(chunk);  // 1 MiB
  EXPECT_TRUE(long_line.error());
  EXPECT_FALSE(parse_reply("550 " + std::string(1024 * 1024, 'x') + "\r\n"));
}

TEST(ParseReply, FinalLineWithoutLineEnding) {
  auto r = parse_reply("250-a\r\n250 b");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->text, "a\nb");
}

TEST(ParseReply, TrailingDataAfterFinalLineIsMalformed) {
  EXPECT_FALSE(parse_reply("250 ok\r\n250 again\r\n"));
  EXPECT_FALSE(parse_reply(""));
}

TEST(ExtractEnhanced, Cases) {
  EXPECT_EQ(extract_enhanced("5.1.1 User unknown"), "5.1.1");
  EXPECT_EQ(extract_enhanced("4.7.0"), "4.7.0");
  EXPECT_EQ(extract_enhanced("2.0.0 Ok"), "2.0.0");
  EXPECT_EQ(extract_enhanced("5.123.456 x"), "5.123.456");
  EXPECT_EQ(extract_enhanced("5.1234.1 x"), "");
  EXPECT_EQ(extract_enhanced("5.1.1234 x"), "");
  EXPECT_EQ(extract_enhanced("3.1.1 x"), "");
  EXPECT_EQ(extract_enhanced("5.1 x"), "");
  EXPECT_EQ(extract_enhanced("5..1 x"), "");
  EXPECT_EQ(extract_enhanced("5.1.1,x"), "");
  EXPECT_EQ(extract_enhanced(" 5.1.1 x"), "");
  EXPECT_EQ(extract_enhanced(""), "");
}

TEST(ReplySummary, JoinsLines) {
  auto r = parse_reply("550-5.1.1 first\r\n550 5.1.1 second\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->summary(), "550 5.1.1 first second");
  auto plain = parse_reply("250 ok\r\n");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->summary(), "250 ok");
  EXPECT_EQ(parse_reply("354\r\n")->summary(), "354");
  EXPECT_TRUE(parse_reply("451 4.7.1 x\r\n")->transient());
  EXPECT_TRUE(parse_reply("554 5.7.1 x\r\n")->permanent());
  EXPECT_TRUE(parse_reply("354 go\r\n")->positive());
}

TEST(ToWire, LineEndingsAndDotStuffing) {
  EXPECT_EQ(to_wire("a\nb\n"), "a\r\nb\r\n");
  EXPECT_EQ(to_wire("a\r\nb"), "a\r\nb\r\n");
  EXPECT_EQ(to_wire("a\rb\r"), "a\r\nb\r\n");
  EXPECT_EQ(to_wire("a\n\nb"), "a\r\n\r\nb\r\n");
  EXPECT_EQ(to_wire("a\r\r\nb"), "a\r\n\r\nb\r\n") << "bare CR then CRLF: two line ends";
  EXPECT_EQ(to_wire(".start\n.\n..\nmid.dle\n"), "..start\r\n..\r\n...\r\nmid.dle\r\n");
  EXPECT_EQ(to_wire("."), "..\r\n");
  EXPECT_EQ(to_wire("x\r\n.\r\n"), "x\r\n..\r\n");
  EXPECT_EQ(to_wire(""), "");
  std::string utf8 = "Gr\xc3\xbc\xc3\x9f" "e\n";
  EXPECT_EQ(to_wire(utf8), "Gr\xc3\xbc\xc3\x9f" "e\r\n");
}

TEST(OutcomeFor, PicksTheDecidingReply) {
  auto reply = [](int code) {
    Reply r;
    r.code = code;
    return r;
  };
  TransactionResult t;
  t.mail = reply(250);
  t.rcpt = {reply(250), reply(550), reply(451), reply(0)};
  t.data = reply(354);
  t.final = reply(250);
  EXPECT_EQ(t.outcome_for(0).code, 250);
  EXPECT_EQ(&t.outcome_for(0), &t.final);
  EXPECT_EQ(t.outcome_for(1).code, 550);
  EXPECT_EQ(t.outcome_for(2).code, 451);
  EXPECT_EQ(t.outcome_for(3).code, 0);
  EXPECT_EQ(t.outcome_for(99).code, 0);

  t.data = reply(554);
  EXPECT_EQ(t.outcome_for(0).code, 554);
  EXPECT_EQ(t.outcome_for(1).code, 550) << "a refused RCPT decides even when DATA failed";

  t.mail = reply(452);
  EXPECT_EQ(t.outcome_for(0).code, 452);
  EXPECT_EQ(t.outcome_for(1).code, 452);

  TransactionResult none;
  none.rcpt.resize(1);
  EXPECT_EQ(none.outcome_for(0).code, 0);
}

}  // namespace
}  // namespace kurier::smtp
