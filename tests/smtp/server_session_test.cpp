// Unit tests of the shared SMTP server dialogue (smtp/server_session.h): the pure
// parsers, the bounded line buffer and the state machine driven through fake hooks,
// without sockets.
#include "smtp/server_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace kurier::smtp {
namespace {

TEST(ServerParse, SplitCommandTrimsTheArguments) {
  auto c = split_command("MAIL  FROM:<a@b> \t");
  EXPECT_EQ(c.verb, "MAIL");
  EXPECT_EQ(c.args, "FROM:<a@b>");
  c = split_command("QUIT");
  EXPECT_EQ(c.verb, "QUIT");
  EXPECT_EQ(c.args, "");
}

TEST(ServerParse, PathWithBracketsAndParameters) {
  auto p = parse_path("FROM:<a@b.test> SIZE=10 BODY=8BITMIME", "FROM:");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "a@b.test");
  EXPECT_EQ(p->params, " SIZE=10 BODY=8BITMIME");
  p = parse_path("from:<>", "FROM:");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "");
  EXPECT_EQ(p->params, "");
}

TEST(ServerParse, PathIsLenientAboutSpacesBracketsAndSourceRoutes) {
  auto p = parse_path("TO: <b@y.test>", "TO:");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "b@y.test");
  p = parse_path("to:b@y.test NOTIFY=NEVER", "TO:");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "b@y.test");
  EXPECT_EQ(p->params, " NOTIFY=NEVER");
  p = parse_path("TO:<@relay.test,@other.test:user@d.test>", "TO:");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "user@d.test");
}

TEST(ServerParse, PathRejectsMissingKeywordBracketOrRouteEnd) {
  EXPECT_FALSE(parse_path("FROM:<a@b", "FROM:"));
  EXPECT_FALSE(parse_path("TO:<a@b>", "FROM:"));
  EXPECT_FALSE(parse_path("FRO", "FROM:"));
  EXPECT_FALSE(parse_path("TO:<@relay.test>", "TO:"));
}

TEST(ServerParse, SizeParameter) {
  EXPECT_EQ(size_parameter(" SIZE=1234"), 1234u);
  EXPECT_EQ(size_parameter(" BODY=8BITMIME size=99 SMTPUTF8"), 99u);
  EXPECT_EQ(size_parameter(" SIZE=12x"), 0u);
  EXPECT_EQ(size_parameter(" BODY=7BIT"), 0u);
  EXPECT_EQ(size_parameter(""), 0u);
}

TEST(ServerParse, DotUnstuffing) {
  EXPECT_FALSE(unstuff(".\r\n"));
  EXPECT_FALSE(unstuff(".\n"));
  EXPECT_EQ(unstuff("..leading dot\r\n"), ".leading dot\r\n");
  EXPECT_EQ(unstuff(".x\n"), "x\n");
  EXPECT_EQ(unstuff("plain\r\n"), "plain\r\n");
  EXPECT_EQ(unstuff("..\r\n"), ".\r\n");
}

void put(LineBuffer& in, std::string_view bytes) {
  while (!bytes.empty()) {
    auto space = in.space();
    const auto n = std::min(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), n);
    in.commit(n);
    bytes.remove_prefix(n);
  }
}

TEST(ServerLineBuffer, CutsLinesKeepingTheirEnds) {
  LineBuffer in(100);
  put(in, "EHLO a\r\nNOOP\nQU");
  std::string_view line;
  ASSERT_EQ(in.next(line, 100), LineBuffer::Next::line);
  EXPECT_EQ(line, "EHLO a\r\n");
  ASSERT_EQ(in.next(line, 100), LineBuffer::Next::line);
  EXPECT_EQ(line, "NOOP\n");
  EXPECT_EQ(in.next(line, 100), LineBuffer::Next::none);
  put(in, "IT\r\n");
  ASSERT_EQ(in.next(line, 100), LineBuffer::Next::line);
  EXPECT_EQ(line, "QUIT\r\n");
}

TEST(ServerLineBuffer, OverlongLineIsReportedAndCanBeSkipped) {
  LineBuffer in(10);
  std::string_view line;
  put(in, std::string(12, 'x'));  // the limit plus room for CRLF: not yet too long
  EXPECT_EQ(in.next(line, 10), LineBuffer::Next::none);
  put(in, "y");
  EXPECT_EQ(in.next(line, 10), LineBuffer::Next::too_long);
  in.skip_line();
  put(in, "rest of it\r\nnext\r\n");
  ASSERT_EQ(in.next(line, 10), LineBuffer::Next::line);
  EXPECT_EQ(line, "next\r\n");
}

// Records what the dialogue asks; accepts everything.
struct FakeHooks : ServerHooks {
  bool greeting(ServerDialogue& d) override {
    d.reply("220 test");
    return true;
  }
  bool hello(bool, ServerDialogue& d) override {
    d.reply("250 test");
    return true;
  }
  bool mail(const Path&, ServerDialogue& d) override {
    d.reply("250 mail");
    return true;
  }
  bool rcpt(std::string_view address, ServerDialogue& d) override {
    if (address.starts_with("bad")) {
      d.error("550 no");
      return false;
    }
    d.reply("250 rcpt");
    return true;
  }
  bool data(ServerDialogue& d) override {
    d.reply("354 go");
    return true;
  }
  void message(ServerDialogue& d) override {
    messages.emplace_back(d.message());
    senders.emplace_back(d.sender());
    recipients = d.recipients().size();
    d.reply("250 queued");
  }
  void starttls(std::string_view, ServerDialogue& d) override { d.error("502 no tls"); }
  void oversized() override { ++oversized_count; }
  void too_many_recipients() override { ++too_many; }

  std::vector<std::string> messages;
  std::vector<std::string> senders;
  std::size_t recipients = 0;
  int oversized_count = 0;
  int too_many = 0;
};

// Feeds `input` to a dialogue and returns everything it answered.
struct Harness {
  explicit Harness(DialogueOptions options) : dialogue(hooks, std::move(options)), in(1024) { dialogue.start(); }
  std::string run(std::string_view input) {
    put(in, input);
    while (dialogue.handle_next(in)) {
    }
    std::string out;
    out.swap(dialogue.output());
    return out;
  }
  FakeHooks hooks;
  ServerDialogue dialogue;
  LineBuffer in;
};

DialogueOptions small_options() {
  DialogueOptions options;
  options.max_command_line = 64;
  options.max_data_line = 100;
  options.max_message_bytes = 50;
  options.max_recipients = 2;
  return options;
}

TEST(ServerDialogue, TransactionWithDotUnstuffing) {
  Harness h(small_options());
  EXPECT_EQ(h.run(""), "220 test\r\n");
  EXPECT_EQ(h.run("EHLO c\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n"),
            "250 test\r\n250 mail\r\n250 rcpt\r\n354 go\r\n");
  EXPECT_TRUE(h.dialogue.in_data());
  EXPECT_EQ(h.run("A: b\r\n\r\n..dot\r\nbare\n.\r\nNOOP\r\n"), "250 queued\r\n250 2.0.0 Ok\r\n");
  ASSERT_EQ(h.hooks.messages.size(), 1u);
  EXPECT_EQ(h.hooks.messages[0], "A: b\r\n\r\n.dot\r\nbare\n");
  EXPECT_EQ(h.hooks.senders[0], "s@x.test");
  EXPECT_EQ(h.hooks.recipients, 1u);
  EXPECT_EQ(h.run("QUIT\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(h.dialogue.closing());
}

TEST(ServerDialogue, CrlfLineEndsNormaliseBareLineFeeds) {
  auto options = small_options();
  options.crlf_line_ends = true;
  Harness h(options);
  h.run("HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<r@y.test>\r\nDATA\r\nbare\n..x\n.\n");
  ASSERT_EQ(h.hooks.messages.size(), 1u);
  EXPECT_EQ(h.hooks.messages[0], "bare\r\n.x\r\n");
}

TEST(ServerDialogue, SizeBoundRefusesTheMessageAfterItsEnd) {
  Harness h(small_options());
  h.run("EHLO c\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n");
  const std::string line(30, 'z');
  EXPECT_EQ(h.run(line + "\r\n" + line + "\r\n"), "");  // read on to the end
  EXPECT_EQ(h.run(".\r\n"), "552 5.3.4 Error: message size exceeds fixed limit\r\n");
  EXPECT_TRUE(h.hooks.messages.empty());
  EXPECT_EQ(h.hooks.oversized_count, 1);
  EXPECT_EQ(h.run("MAIL FROM:<s@x.test> SIZE=51\r\n"), "552 5.3.4 Error: message size exceeds fixed limit\r\n");
  EXPECT_EQ(h.hooks.oversized_count, 2);
  EXPECT_EQ(h.run("MAIL FROM:<s@x.test> SIZE=50\r\n"), "250 mail\r\n");
}

TEST(ServerDialogue, OverlongCommandLineCloses) {
  Harness h(small_options());
  EXPECT_EQ(h.run(""), "220 test\r\n");
  EXPECT_EQ(h.run("EHLO " + std::string(100, 'h')), "500 5.5.2 Error: line too long\r\n");
  EXPECT_TRUE(h.dialogue.closing());
}

TEST(ServerDialogue, OverlongDataLineRefusesTheMessageAtItsEnd) {
  auto options = small_options();
  options.max_message_bytes = 0;
  Harness h(options);
  h.run("EHLO c\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n");
  EXPECT_EQ(h.run(std::string(200, 'l')), "");
  EXPECT_EQ(h.run(std::string(50, 'l') + "\r\nshort\r\n.\r\n"), "500 5.5.2 Error: line too long\r\n");
  EXPECT_FALSE(h.dialogue.closing());
  EXPECT_TRUE(h.hooks.messages.empty());
  EXPECT_EQ(h.run("NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(ServerDialogue, SequenceErrorsRecipientLimitAndVerbs) {
  auto options = small_options();
  options.unimplemented = {"AUTH"};
  options.help = "214 help";
  Harness h(options);
  EXPECT_EQ(h.run("MAIL FROM:<a@b>\r\n"), "220 test\r\n503 5.5.1 Error: send HELO/EHLO first\r\n");
  EXPECT_EQ(h.run("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
  h.run("EHLO c\r\n");
  EXPECT_EQ(h.run("DATA\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
  h.run("MAIL FROM:<a@b>\r\n");
  EXPECT_EQ(h.run("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
  EXPECT_EQ(h.run("RCPT TO:<>\r\n"), "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  EXPECT_EQ(h.run("RCPT TO:<a@y>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n"),
            "250 rcpt\r\n250 rcpt\r\n452 4.5.3 Error: too many recipients\r\n");
  EXPECT_EQ(h.hooks.too_many, 1);
  EXPECT_EQ(h.run("DATA now\r\n"), "501 5.5.4 Syntax: DATA\r\n");
  EXPECT_EQ(h.run("AUTH PLAIN x\r\nXYZZY\r\nHELP\r\nSTARTTLS\r\n"),
            "502 5.5.1 Error: command not implemented\r\n500 5.5.1 Error: command not recognized\r\n"
            "214 help\r\n502 no tls\r\n");
  EXPECT_EQ(h.run("RSET\r\nRCPT TO:<a@y>\r\n"), "250 2.0.0 Ok\r\n503 5.5.1 Error: need MAIL command\r\n");
}

TEST(ServerDialogue, TooManyErrorsAnswer421AndClose) {
  auto options = small_options();
  options.max_errors = 3;
  Harness h(options);
  h.run("EHLO c\r\nMAIL FROM:<a@b>\r\n");
  EXPECT_EQ(h.run("RCPT TO:<bad@y>\r\nXYZZY\r\n"), "550 no\r\n500 5.5.1 Error: command not recognized\r\n");
  EXPECT_EQ(h.run("XYZZY\r\nNOOP\r\n"), "421 4.7.0 Error: too many errors\r\n");
  EXPECT_TRUE(h.dialogue.closing());
}

TEST(ServerDialogue, TlsStartForgetsTheClient) {
  Harness h(small_options());
  h.run("EHLO c\r\nMAIL FROM:<a@b>\r\n");
  h.dialogue.tls_started();
  EXPECT_EQ(h.dialogue.helo(), "");
  EXPECT_EQ(h.run("MAIL FROM:<a@b>\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
}

}  // namespace
}  // namespace kurier::smtp
