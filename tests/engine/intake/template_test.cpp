// Unit tests for message templates: placeholders, wire form (CRLF, dot-stuffing),
// RFC 2047 header values, header-injection defence and template errors.
#include "engine/intake/template.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/input_error.h"

namespace kurier::engine {
namespace {

const std::vector<std::string> kFields = {"email", "name", "city", "code"};

std::string render(const Template& t, std::vector<std::string_view> values, std::string_view extra = {}) {
  values.resize(kFields.size());
  std::string out;
  t.render(values, extra, out);
  return out;
}

// The header block of a rendered message (up to and including the empty line).
std::string header_block(const std::string& message) {
  const std::size_t end = message.find("\r\n\r\n");
  return end == std::string::npos ? message : message.substr(0, end + 4);
}

std::vector<std::string> split_crlf(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t eol = text.find("\r\n", pos);
    if (eol == std::string::npos) {
      lines.push_back(text.substr(pos));
      break;
    }
    lines.push_back(text.substr(pos, eol - pos));
    pos = eol + 2;
  }
  return lines;
}

// Every line break in wire form must be CRLF.
bool only_crlf(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return false;
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return false;
  }
  return true;
}

std::string base64_decode(std::string_view in) {
  const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    if (c == '=') break;
    const std::size_t v = alphabet.find(c);
    if (v == std::string_view::npos) throw std::runtime_error("bad base64");
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  return out;
}

// Decodes a header value made of "=?UTF-8?B?...?=" words separated by folding
// whitespace (RFC 2047 §6.2: the whitespace between adjacent words is dropped).
// Also checks each word's length limit (75 characters).
std::string decode_encoded_words(std::string_view value) {
  std::string out;
  while (!value.empty()) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\r' || value.front() == '\n')) {
      value.remove_prefix(1);
    }
    if (value.empty()) break;
    if (!value.starts_with("=?UTF-8?B?")) throw std::runtime_error("not an encoded-word: " + std::string(value));
    const std::size_t end = value.find("?=", 10);
    if (end == std::string_view::npos) throw std::runtime_error("unterminated encoded-word");
    EXPECT_LE(end + 2, 75u) << "encoded-word longer than 75 characters";
    out += base64_decode(value.substr(10, end - 10));
    value.remove_prefix(end + 2);
  }
  return out;
}

TEST(Template, SubstitutesInHeadersAndBody) {
  const Template t = Template::compile(
      "From: News <news@example.com>\nTo: {{name}} <{{email}}>\nSubject: Hello {{name}}\n\n"
      "Dear {{name}} from {{city}},\nyour code is {{code}}.\n",
      kFields);
  EXPECT_EQ(render(t, {"ann@example.org", "Ann", "Oslo", "X1"}),
            "From: News <news@example.com>\r\nTo: Ann <ann@example.org>\r\nSubject: Hello Ann\r\n\r\n"
            "Dear Ann from Oslo,\r\nyour code is X1.\r\n");
  EXPECT_EQ(t.used_fields(), (std::vector<std::string>{"name", "email", "city", "code"}));
  EXPECT_FALSE(t.eight_bit());
}

TEST(Template, PlaceholderSpacing) {
  const Template t = Template::compile("Subject: x\n\n[{{name}}][{{ name }}][{{name  }}][{{\tname}}]\n", kFields);
  EXPECT_EQ(render(t, {"", "Bo"}), "Subject: x\r\n\r\n[Bo][Bo][Bo][Bo]\r\n");
  EXPECT_EQ(t.used_fields(), (std::vector<std::string>{"name"}));
}

TEST(Template, UnknownFieldNamesFileLineAndField) {
  try {
    (void)Template::compile("Subject: hi {{name}}\nTo: {{email}}\n\nline 4\nHello {{ nmae }}!\n", kFields,
                            "campaign/news.eml");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "campaign/news.eml");
    EXPECT_EQ(e.line(), 5u);
    EXPECT_EQ(e.field(), "nmae");
    EXPECT_NE(std::string(e.what()).find("campaign/news.eml:5"), std::string::npos) << e.what();
  }
  // In the header block too, and with CRLF line endings.
  try {
    (void)Template::compile("Subject: x\r\nX-Tag: {{tag}}\r\n\r\nbody\r\n", kFields);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "template.eml");
    EXPECT_EQ(e.line(), 2u);
    EXPECT_EQ(e.field(), "tag");
  }
  // Names are case-sensitive.
  EXPECT_THROW((void)Template::compile("S: x\n\n{{Name}}\n", kFields), InputError);
}

TEST(Template, LiteralBracesAreKept) {
  const Template t = Template::compile(
      "Subject: {{ not closed\n\n"
      "a {{ b\n{{}} {{ }} {{\n}} x}} {x} {{name} y\n{{{name}}}\n",
      kFields);
  EXPECT_EQ(render(t, {"", "Cy"}),
            "Subject: {{ not closed\r\n\r\n"
            "a {{ b\r\n{{}} {{ }} {{\r\n}} x}} {x} {{name} y\r\n{Cy}\r\n");
}

TEST(Template, LfAndCrlfTemplatesGiveTheSameCrlfOutput) {
  const std::string lf = "Subject: {{name}}\nX-A: 1\n\nline one {{city}}\n\nline three\n";
  std::string crlf;
  for (char c : lf) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  const Template a = Template::compile(lf, kFields);
  const Template b = Template::compile(crlf, kFields);
  const std::string out_a = render(a, {"", "N", "C"});
  EXPECT_EQ(out_a, render(b, {"", "N", "C"}));
  EXPECT_EQ(out_a, "Subject: N\r\nX-A: 1\r\n\r\nline one C\r\n\r\nline three\r\n");
  EXPECT_TRUE(only_crlf(out_a));
  // A missing final line break is added: the caller appends ".\r\n".
  EXPECT_EQ(render(Template::compile("Subject: x\n\nno newline", kFields), {}), "Subject: x\r\n\r\nno newline\r\n");
  // Lone CRs count as line breaks too.
  EXPECT_EQ(render(Template::compile("Subject: x\r\rbody\r", kFields), {}), "Subject: x\r\n\r\nbody\r\n");
}

TEST(Template, DotStuffsTemplateLines) {
  const Template t = Template::compile("Subject: x\n\n.\n..\n.hidden\nnot. stuffed\n. {{name}}\n", kFields);
  EXPECT_EQ(render(t, {"", "v"}), "Subject: x\r\n\r\n..\r\n...\r\n..hidden\r\nnot. stuffed\r\n.. v\r\n");
}

TEST(Template, DotStuffsValuesAtLineStart) {
  const Template t = Template::compile("Subject: x\n\n{{name}}\nmid {{name}}\n{{name}} tail\n", kFields);
  EXPECT_EQ(render(t, {"", "."}), "Subject: x\r\n\r\n..\r\nmid .\r\n.. tail\r\n");
  EXPECT_EQ(render(t, {"", ".."}), "Subject: x\r\n\r\n...\r\nmid ..\r\n... tail\r\n");
  EXPECT_EQ(render(t, {"", ".x"}), "Subject: x\r\n\r\n..x\r\nmid .x\r\n..x tail\r\n");
  EXPECT_EQ(render(t, {"", "x."}), "Subject: x\r\n\r\nx.\r\nmid x.\r\nx. tail\r\n");
  EXPECT_EQ(render(t, {"", ""}), "Subject: x\r\n\r\n\r\nmid \r\n tail\r\n");
}

TEST(Template, DotStuffingWhenEarlierValuesOnTheLineAreEmpty) {
  // Whether ".tail" or the second value opens the line depends on the first value.
  const Template t = Template::compile("Subject: x\n\n{{name}}.tail\n{{name}}{{city}}\n", kFields);
  EXPECT_EQ(render(t, {"", "", ".c"}), "Subject: x\r\n\r\n..tail\r\n..c\r\n");
  EXPECT_EQ(render(t, {"", "n", ".c"}), "Subject: x\r\n\r\nn.tail\r\nn.c\r\n");
  EXPECT_EQ(render(t, {"", "", "c"}), "Subject: x\r\n\r\n..tail\r\nc\r\n");
}

TEST(Template, DotStuffingAtTheStartOfTheMessage) {
  const Template t = Template::compile("{{name}}: v\n\nbody\n", kFields);
  EXPECT_EQ(render(t, {"", ".X-Odd"}), "..X-Odd: v\r\n\r\nbody\r\n");
  // After extra headers the template still starts a line.
  EXPECT_EQ(render(t, {"", ".X-Odd"}, "Message-ID: <1@x>\r\n"), "Message-ID: <1@x>\r\n..X-Odd: v\r\n\r\nbody\r\n");
}

TEST(Template, NonAsciiHeaderValueBecomesEncodedWord) {
  const Template t = Template::compile("Subject: Hallo {{name}}\nTo: {{name}} <{{email}}>\n\nHallo {{name}}!\n", kFields);
  const std::string name = "J\xC3\xBCrgen \xC3\x96zdemir";  // Jürgen Özdemir
  const std::string out = render(t, {"j@example.de", name});
  const std::vector<std::string> lines = split_crlf(out);
  ASSERT_GE(lines.size(), 4u);
  ASSERT_TRUE(lines[0].starts_with("Subject: Hallo =?UTF-8?B?")) << lines[0];
  EXPECT_EQ(decode_encoded_words(std::string_view(lines[0]).substr(15)), name);
  ASSERT_TRUE(lines[1].starts_with("To: =?UTF-8?B?")) << lines[1];
  const std::size_t angle = lines[1].find(" <j@example.de>");
  ASSERT_NE(angle, std::string::npos);
  EXPECT_EQ(decode_encoded_words(std::string_view(lines[1]).substr(4, angle - 4)), name);
  // Header lines are pure ASCII; the body carries the raw UTF-8.
  for (char c : header_block(out)) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
  EXPECT_EQ(lines[3], "Hallo " + name + "!");
  // ASCII values stay as they are in headers.
  EXPECT_EQ(split_crlf(render(t, {"a@b", "Ann"}))[0], "Subject: Hallo Ann");
}

TEST(Template, LongNonAsciiHeaderValueIsFoldedIntoWholeCharacterWords) {
  const Template t = Template::compile("Subject: {{name}}\nX-B: 1\n\nbody\n", kFields);
  std::string name;
  for (int i = 0; i < 40; ++i) name += "\xE2\x82\xAC-";  // "€-" x 40: 160 bytes
  const std::string out = render(t, {"", name});
  const std::string headers = header_block(out);
  ASSERT_TRUE(headers.starts_with("Subject: "));
  const std::size_t end = headers.find("\r\nX-B: 1\r\n");
  ASSERT_NE(end, std::string::npos);
  const std::string value = headers.substr(9, end - 9);
  EXPECT_EQ(decode_encoded_words(value), name);
  // RFC 2047 §2: a line holding encoded-words is at most 76 characters.
  for (const std::string& line : split_crlf(headers)) {
    EXPECT_LE(line.size(), 76u) << line;
  }
  // Continuation lines start with a space: no new header field.
  for (std::size_t pos = value.find("\r\n"); pos != std::string::npos; pos = value.find("\r\n", pos + 2)) {
    EXPECT_EQ(value[pos + 2], ' ');
  }
  // Each word holds whole UTF-8 characters: every word decodes to valid text on its own.
  std::string_view rest = value;
  while (!rest.empty()) {
    const std::size_t start = rest.find("=?UTF-8?B?");
    if (start == std::string_view::npos) break;
    const std::size_t stop = rest.find("?=", start + 10);
    const std::string word = base64_decode(rest.substr(start + 10, stop - start - 10));
    ASSERT_FALSE(word.empty());
    EXPECT_NE(static_cast<unsigned char>(word.front()) & 0xC0, 0x80u) << "word starts mid-character";
    rest.remove_prefix(stop + 2);
  }
}

TEST(Template, LineBreaksInValuesNeverStartANewHeaderOrLine) {
  const Template t = Template::compile("Subject: Hi {{name}}\nTo: <{{email}}>\n\nBody {{name}}\n{{city}}\n", kFields);
  const std::string out =
      render(t, {"a@example.com\r\nBcc: victim@example.net", "x\r\nBcc: evil@example.com\n\r", "\r\n.\r\nMAIL FROM:<e>\n"});
  EXPECT_TRUE(only_crlf(out));
  const std::vector<std::string> lines = split_crlf(out);
  ASSERT_EQ(lines.size(), 5u) << out;
  EXPECT_EQ(lines[0], "Subject: Hi x  Bcc: evil@example.com  ");
  EXPECT_EQ(lines[1], "To: <a@example.com  Bcc: victim@example.net>");
  EXPECT_EQ(lines[2], "");
  EXPECT_EQ(lines[4], "  .  MAIL FROM:<e> ");
  for (const std::string& line : lines) {
    EXPECT_FALSE(line.starts_with("Bcc")) << line;
    EXPECT_NE(line, ".");
  }
  // Non-ASCII with line breaks: encoded, and the decoded text has no line break either.
  const std::string name = "\xC3\xA9\r\nBcc: e@x";
  const std::string encoded = render(t, {"", name});
  const std::string subject = split_crlf(encoded)[0];
  ASSERT_TRUE(subject.starts_with("Subject: Hi =?UTF-8?B?"));
  EXPECT_EQ(decode_encoded_words(std::string_view(subject).substr(12)), "\xC3\xA9  Bcc: e@x");
  EXPECT_EQ(split_crlf(encoded)[1], "To: <>");
}

TEST(Template, HasHeader) {
  const Template t = Template::compile(
      "From: a@example.com\nSubject: x\n  folded: continuation\nList-Unsubscribe : <mailto:u@x>\n\n"
      "X-In-Body: yes\nReply-To: b@x\n",
      kFields);
  EXPECT_TRUE(t.has_header("from"));
  EXPECT_TRUE(t.has_header("FROM"));
  EXPECT_TRUE(t.has_header("Subject"));
  EXPECT_TRUE(t.has_header("list-unsubscribe"));
  EXPECT_FALSE(t.has_header("folded"));
  EXPECT_FALSE(t.has_header("X-In-Body"));
  EXPECT_FALSE(t.has_header("reply-to"));
  EXPECT_FALSE(t.has_header("Message-ID"));
  EXPECT_FALSE(t.has_header(""));
}

TEST(Template, ExtraHeadersArePrependedAndOutputIsAppended) {
  const Template t = Template::compile("Subject: {{name}}\n\nbody\n", kFields);
  std::string out = "prefix|";
  const std::vector<std::string_view> values = {"", "S", "", ""};
  t.render(values, "Message-ID: <1@example.com>\r\nReturn-Path: <b+x@b.example>\r\n", out);
  EXPECT_EQ(out,
            "prefix|Message-ID: <1@example.com>\r\nReturn-Path: <b+x@b.example>\r\nSubject: S\r\n\r\nbody\r\n");
}

TEST(Template, MissingSeparatorIsAnInputError) {
  try {
    (void)Template::compile("Subject: x\nFrom: y\n", kFields, "t.eml");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "t.eml");
  }
  EXPECT_THROW((void)Template::compile("Subject: x", kFields), InputError);
  EXPECT_THROW((void)Template::compile("", kFields), InputError);
  // A header line without a colon (e.g. body text with no header block).
  try {
    (void)Template::compile("Subject: x\nHello there\n\nbody\n", kFields, "t.eml");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.line(), 2u);
  }
  // An empty header block with a separator is accepted.
  EXPECT_EQ(render(Template::compile("\nbody\n", kFields), {}), "\r\nbody\r\n");
}

TEST(Template, SizesAndEightBit) {
  const Template t = Template::compile("Subject: {{name}}\n\nCaf\xC3\xA9 {{city}}\n", kFields);
  EXPECT_TRUE(t.eight_bit());
  EXPECT_EQ(t.literal_size(), std::string("Subject: \r\n\r\nCaf\xC3\xA9 \r\n").size());
  EXPECT_EQ(t.used_fields(), (std::vector<std::string>{"name", "city"}));
  // Too few values is a caller bug.
  const std::vector<std::string_view> one = {"x"};
  std::string out;
  EXPECT_THROW(t.render(one, {}, out), std::invalid_argument);
}

TEST(Template, RendersRepeatedlyIntoAReusedBuffer) {
  std::string body;
  for (int i = 0; i < 80; ++i) body += "Line " + std::to_string(i) + " of the newsletter for {{name}} in {{city}}.\n";
  const Template t = Template::compile("Subject: News for {{name}}\n\n" + body, kFields);
  std::string out;
  std::string first;
  for (int i = 0; i < 1000; ++i) {
    out.clear();
    const std::vector<std::string_view> values = {"e@x", "Name", "City", ""};
    t.render(values, "Message-ID: <m@x>\r\n", out);
    if (i == 0) first = out;
    ASSERT_EQ(out, first);
  }
  EXPECT_TRUE(only_crlf(first));
}

}  // namespace
}  // namespace kurier::engine
