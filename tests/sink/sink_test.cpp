// kurier-sink behaviour tests: the real binary on loopback, driven over SMTP by a
// blocking test client. Every sink is stopped by PID when its Sink object goes away;
// every socket read has a timeout, so a misbehaving sink fails a test, never hangs it.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "tests/sink/sink_harness.h"

namespace kurier::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kLocal = "127.0.0.1";

TEST(SinkTest, EhloAdvertisesExtensionsWithoutStarttlsByDefault) {
  Sink sink(SinkOptions().without_store().without_stats());
  SmtpSocket smtp(kLocal, sink.port());
  EXPECT_EQ(smtp.reply(), "220 kurier-sink ESMTP\r\n");
  const std::string ehlo = smtp.command("EHLO client.test");
  EXPECT_EQ(ehlo,
            "250-kurier-sink Hello client.test\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n");
  EXPECT_EQ(smtp.command("HELO client.test"), "250 kurier-sink\r\n");
  EXPECT_EQ(smtp.command("QUIT"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(smtp.closed_by_peer());
}

TEST(SinkTest, ScriptTurnsOffExtensionsAndSetsGreetingAndSize) {
  Sink sink(SinkOptions().with_script(R"(
greeting = "220 mx.test ready"
pipelining = false
eight_bit_mime = false
smtputf8 = false
size_limit = 1000
)").without_store().without_stats());
  SmtpSocket smtp(kLocal, sink.port());
  EXPECT_EQ(smtp.reply(), "220 mx.test ready\r\n");
  EXPECT_EQ(smtp.command("EHLO c"), "250-kurier-sink Hello c\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n");
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<a@x.test> SIZE=1001")), 552);
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<a@x.test> SIZE=999")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<b@y.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  smtp.send(std::string(1200, 'x') + "\r\n");
  EXPECT_EQ(smtp.command("."), "552 5.3.4 Error: message size exceeds fixed limit\r\n");
  // The connection is still usable after a refused message.
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<a@x.test>")), 250);
}

TEST(SinkTest, StoresMessageByteExactWithDotUnstuffingAndHeaders) {
  Sink sink;
  SmtpSocket smtp(kLocal, sink.port());
  ASSERT_EQ(code_of(smtp.reply()), 220);
  EXPECT_EQ(code_of(smtp.command("EHLO client.test")), 250);
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<bounce+abc@sender.test> BODY=8BITMIME")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<alice@one.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<Bob@Two.Test>")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  const std::string stuffed =
      "Subject: dots\r\n"
      "\r\n"
      "..leading dot\r\n"
      "...two dots\r\n"
      ". \r\n"
      "middle . dot\r\n"
      "bare\nlf line\r\n"
      "last line\r\n";
  smtp.send(stuffed);
  EXPECT_EQ(smtp.command("."), "250 2.0.0 Ok: queued\r\n");

  auto files = sink.stored();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].extension(), ".eml");
  EXPECT_EQ(read_file(files[0]),
            "Return-Path: <bounce+abc@sender.test>\r\n"
            "X-Sink-Rcpt: <alice@one.test>, <Bob@Two.Test>\r\n"
            "Subject: dots\r\n"
            "\r\n"
            ".leading dot\r\n"
            "..two dots\r\n"
            " \r\n"
            "middle . dot\r\n"
            "bare\nlf line\r\n"
            "last line\r\n");
  // Nothing but finished files in the store (temp files are renamed).
  std::size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sink.store_dir() / kLocal)) {
    ++entries;
    EXPECT_EQ(entry.path().extension(), ".eml");
  }
  EXPECT_EQ(entries, 1u);
}

TEST(SinkTest, StoresOnlyAcceptedRecipientsAndEmptySender) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "rcpt"
match = "nobody"
reply = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
)"));
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  smtp.command("EHLO c");
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<>")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<a@x.test>")), 250);
  EXPECT_EQ(smtp.command("RCPT TO:<nobody@x.test>"),
            "550 5.1.1 <nobody@x.test>: Recipient address rejected: User unknown\r\n");
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<b@x.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  smtp.send("Subject: x\r\n\r\nbody\r\n");
  EXPECT_EQ(code_of(smtp.command(".")), 250);
  auto files = sink.stored();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(files[0]),
            "Return-Path: <>\r\nX-Sink-Rcpt: <a@x.test>, <b@x.test>\r\nSubject: x\r\n\r\nbody\r\n");
}

TEST(SinkTest, AcceptsLinesUpTo64KiBInData) {
  Sink sink;
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  const std::string long_line(64 * 1024 - 2, 'a');
  EXPECT_EQ(code_of(send_message(smtp, "s@x.test", {"r@y.test"}, "Subject: long\r\n\r\n" + long_line + "\r\n")), 250);
  auto files = sink.stored();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(files[0]),
            "Return-Path: <s@x.test>\r\nX-Sink-Rcpt: <r@y.test>\r\nSubject: long\r\n\r\n" + long_line + "\r\n");
  // A longer line is refused, and the session goes on.
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<s@x.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<r@y.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  smtp.send(std::string(200 * 1024, 'b') + "\r\nend\r\n");
  EXPECT_EQ(code_of(smtp.command(".")), 500);
  EXPECT_EQ(code_of(smtp.command("NOOP")), 250);
  EXPECT_EQ(sink.stored().size(), 1u);
}

TEST(SinkTest, BadSequencesAndOtherCommands) {
  Sink sink(SinkOptions().without_store().without_stats());
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  EXPECT_EQ(smtp.command("MAIL FROM:<a@x.test>"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
  EXPECT_EQ(code_of(smtp.command("EHLO")), 501);
  EXPECT_EQ(code_of(smtp.command("ehlo c")), 250);
  EXPECT_EQ(smtp.command("RCPT TO:<b@y.test>"), "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(smtp.command("DATA"), "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<a@x.test>")), 250);
  EXPECT_EQ(smtp.command("MAIL FROM:<a@x.test>"), "503 5.5.1 Error: nested MAIL command\r\n");
  EXPECT_EQ(smtp.command("DATA"), "554 5.5.1 No valid recipients\r\n");
  EXPECT_EQ(code_of(smtp.command("RCPT TO:")), 501);
  EXPECT_EQ(smtp.command("BDAT 10 LAST"), "500 5.5.1 Error: command not recognized\r\n");
  EXPECT_EQ(smtp.command("XYZZY"), "500 5.5.1 Error: command not recognized\r\n");
  EXPECT_EQ(code_of(smtp.command("VRFY someone")), 252);
  EXPECT_EQ(smtp.command("NOOP"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(smtp.command("RSET"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<b@y.test>")), 503);  // RSET ended the transaction
  EXPECT_EQ(code_of(smtp.command("STARTTLS")), 502);               // not enabled
  EXPECT_EQ(code_of(smtp.command("rcpt to:<b@y.test>")), 503);
  EXPECT_EQ(code_of(smtp.command("mail from: <a@x.test>")), 250);  // lenient: space after colon
  EXPECT_EQ(code_of(smtp.command("rcpt to:b@y.test")), 250);       // lenient: no brackets
  EXPECT_EQ(code_of(smtp.command("QUIT")), 221);
}

TEST(SinkTest, RcptRulesRejectDeferAndCountInStats) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "rcpt"
match = "unknown*"
reply = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"

[[rule]]
stage = "rcpt"
match = "*@Busy.Test"
reply = "451 4.7.1 <{rcpt}>: try later, {host}"

[[rule]]
stage = "rcpt"
match = "first-?"
reply = "552 5.2.2 <{rcpt}>: Mailbox full"

[[rule]]
stage = "rcpt"
match = "unknown-vip"
reply = "250 2.1.5 never reached: an earlier rule matches first"
)"));
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  smtp.command("EHLO client.test");
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<s@x.test>")), 250);
  EXPECT_EQ(smtp.command("RCPT TO:<Unknown-VIP@x.test>"),
            "550 5.1.1 <Unknown-VIP@x.test>: Recipient address rejected: User unknown\r\n");
  EXPECT_EQ(smtp.command("RCPT TO:<anyone@busy.test>"), "451 4.7.1 <anyone@busy.test>: try later, client.test\r\n");
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<first-1@x.test>")), 552);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<first-12@x.test>")), 250);  // '?' is one character
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<ok@x.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  smtp.send("Subject: x\r\n\r\nx\r\n");
  EXPECT_EQ(code_of(smtp.command(".")), 250);

  auto stats = sink.wait_stats([](const nlohmann::json& j) { return j.value("messages", 0) == 1; });
  EXPECT_EQ(stats["connections"], 1);
  EXPECT_EQ(stats["messages"], 1);
  EXPECT_EQ(stats["recipients_accepted"], 2);
  EXPECT_EQ(stats["recipients_rejected"], 2);
  EXPECT_EQ(stats["recipients_deferred"], 1);
  EXPECT_EQ(stats["by_address"][kLocal]["messages"], 1);
  auto files = sink.stored();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_NE(read_file(files[0]).find("X-Sink-Rcpt: <first-12@x.test>, <ok@x.test>\r\n"), std::string::npos);
}

TEST(SinkTest, TimesGreylistsFirstAttemptPerRecipient) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "rcpt"
match = "*"
times = 1
reply = "451 4.7.1 Greylisted, try again later"
)"));
  {
    SmtpSocket smtp(kLocal, sink.port());
    smtp.reply();
    smtp.command("EHLO c");
    smtp.command("MAIL FROM:<s@x.test>");
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<a@x.test>")), 451);
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<b@x.test>")), 451);
    EXPECT_EQ(smtp.command("DATA"), "554 5.5.1 No valid recipients\r\n");
    smtp.command("QUIT");
  }
  // The retry arrives on a new connection: the counters are per recipient, not per session.
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  smtp.command("EHLO c");
  smtp.command("MAIL FROM:<s@x.test>");
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<A@x.test>")), 250);  // case-insensitive key
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<c@x.test>")), 451);  // new recipient: first try
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<b@x.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<c@x.test>")), 250);
  auto stats = sink.wait_stats([](const nlohmann::json& j) { return j.value("recipients_accepted", 0) == 3; });
  EXPECT_EQ(stats["recipients_deferred"], 3);
  EXPECT_EQ(stats["recipients_accepted"], 3);
}

TEST(SinkTest, AddressFilterAppliesOnlyToItsListenAddress) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "rcpt"
match = "*"
address = "127.0.0.2"
reply = "550 5.7.1 Rejected on the second address"
)").with_ips({"127.0.0.1", "127.0.0.2"}));
  for (const char* ip : {"127.0.0.1", "127.0.0.2"}) {
    SmtpSocket smtp(ip, sink.port());
    smtp.reply();
    smtp.command("EHLO c");
    smtp.command("MAIL FROM:<s@x.test>");
    const int expected = std::string(ip) == "127.0.0.1" ? 250 : 550;
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<r@y.test>")), expected) << ip;
    if (expected == 250) {
      EXPECT_EQ(code_of(smtp.command("DATA")), 354);
      smtp.send("Subject: x\r\n\r\nx\r\n");
      EXPECT_EQ(code_of(smtp.command(".")), 250);
    }
  }
  EXPECT_EQ(sink.stored("127.0.0.1").size(), 1u);
  EXPECT_EQ(sink.stored("127.0.0.2").size(), 0u);
  auto stats = sink.wait_stats([](const nlohmann::json& j) { return j.value("connections", 0) == 2; });
  EXPECT_EQ(stats["by_address"]["127.0.0.1"]["connections"], 1);
  EXPECT_EQ(stats["by_address"]["127.0.0.1"]["messages"], 1);
  EXPECT_EQ(stats["by_address"]["127.0.0.2"]["connections"], 1);
  EXPECT_EQ(stats["by_address"]["127.0.0.2"]["messages"], 0);
}

TEST(SinkTest, PipelinedBatchIsAnsweredInOrder) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "rcpt"
match = "bad*"
reply = "550 5.1.1 no such user"
)"));
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  smtp.command("EHLO c");
  // Two whole transactions, RSET and NOOP in one write.
  smtp.send(
      "MAIL FROM:<s@x.test>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<bad@y.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
      "Subject: one\r\n\r\n.one\r\n.\r\n"
      "RSET\r\nMAIL FROM:<t@x.test>\r\nRCPT TO:<bad2@y.test>\r\nDATA\r\nNOOP\r\n"
      "RCPT TO:<c@y.test>\r\nDATA\r\nSubject: two\r\n\r\ntwo\r\n.\r\n");
  const int expected[] = {250, 250, 550, 250, 354, 250, 250, 250, 550, 554, 250, 250, 354, 250};
  for (int code : expected) EXPECT_EQ(code_of(smtp.reply()), code);
  auto files = sink.stored();
  ASSERT_EQ(files.size(), 2u);
  const std::string first = read_file(files[0]), second = read_file(files[1]);
  const std::string one = "Return-Path: <s@x.test>\r\nX-Sink-Rcpt: <a@y.test>, <b@y.test>\r\nSubject: one\r\n\r\none\r\n";
  const std::string two = "Return-Path: <t@x.test>\r\nX-Sink-Rcpt: <c@y.test>\r\nSubject: two\r\n\r\ntwo\r\n";
  EXPECT_TRUE((first == one && second == two) || (first == two && second == one)) << first << second;
}

TEST(SinkTest, MaxMessagesPerConnectionAnswers421AndCloses) {
  Sink sink(SinkOptions().with_script("max_messages_per_connection = 2\n"));
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  EXPECT_EQ(code_of(send_message(smtp, "s@x.test", {"r@y.test"}, "Subject: 1\r\n\r\n1\r\n")), 250);
  EXPECT_EQ(code_of(smtp.command("MAIL FROM:<s@x.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<r@y.test>")), 250);
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);
  smtp.send("Subject: 2\r\n\r\n2\r\n");
  EXPECT_EQ(code_of(smtp.command(".")), 250);
  EXPECT_EQ(smtp.command("MAIL FROM:<s@x.test>"), "421 4.7.0 Too many messages, closing\r\n");
  EXPECT_TRUE(smtp.closed_by_peer());
  EXPECT_EQ(sink.stored().size(), 2u);
}

TEST(SinkTest, MaxConnectionsGreets421BeyondTheLimit) {
  Sink sink(SinkOptions().with_script("max_connections = 2\n").without_store());
  SmtpSocket first(kLocal, sink.port());
  SmtpSocket second(kLocal, sink.port());
  EXPECT_EQ(code_of(first.reply()), 220);
  EXPECT_EQ(code_of(second.reply()), 220);
  {
    SmtpSocket third(kLocal, sink.port());
    EXPECT_EQ(third.reply(), "421 4.7.0 Too many connections\r\n");
    EXPECT_TRUE(third.closed_by_peer());
  }
  EXPECT_EQ(code_of(first.command("QUIT")), 221);
  EXPECT_TRUE(first.closed_by_peer());
  // Once the sink has seen the close, a new connection is welcome again.
  bool greeted = false;
  for (int attempt = 0; attempt < 50 && !greeted; ++attempt) {
    SmtpSocket again(kLocal, sink.port());
    greeted = code_of(again.reply()) == 220;
    if (!greeted) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(greeted);
  auto stats = sink.wait_stats([](const nlohmann::json& j) { return j.value("connections", 0) >= 4; });
  EXPECT_EQ(stats["max_concurrent_connections"], 3);  // the refused one was open too
  EXPECT_EQ(stats["by_address"][kLocal]["max_concurrent_connections"], 3);
}

TEST(SinkTest, RulesForConnectEhloMailDataAndMessage) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "connect"
address = "127.0.0.2"
reply = "554 5.7.1 You are not welcome"

[[rule]]
stage = "ehlo"
address = "127.0.0.3"
reply = "550 5.7.1 No EHLO for {host}"

[[rule]]
stage = "mail"
match = "*@spammer.test"
reply = "553 5.7.1 <{sender}>: Sender rejected"

[[rule]]
stage = "mail"
match = "closer@*"
reply = "421 4.3.2 Service shutting down"

[[rule]]
stage = "data"
address = "127.0.0.3"
reply = "554 5.7.1 No DATA here"

[[rule]]
stage = "message"
match = "spam*"
reply = "550 5.7.1 <{rcpt}>: Message rejected as spam"

[[rule]]
stage = "message"
match = "slow@*"
reply = "451 4.3.0 Try again later"
close = true
)").with_ips({"127.0.0.1", "127.0.0.2", "127.0.0.3"}));
  {  // connect rule: only QUIT works afterwards
    SmtpSocket smtp("127.0.0.2", sink.port());
    EXPECT_EQ(smtp.reply(), "554 5.7.1 You are not welcome\r\n");
    EXPECT_EQ(code_of(smtp.command("EHLO c")), 503);
    EXPECT_EQ(code_of(smtp.command("QUIT")), 221);
  }
  {  // ehlo and data rules on 127.0.0.3
    SmtpSocket smtp("127.0.0.3", sink.port());
    EXPECT_EQ(code_of(smtp.reply()), 220);
    EXPECT_EQ(smtp.command("EHLO client.test"), "550 5.7.1 No EHLO for client.test\r\n");
    EXPECT_EQ(code_of(smtp.command("MAIL FROM:<s@x.test>")), 503);
  }
  {
    SmtpSocket smtp(kLocal, sink.port());
    smtp.reply();
    smtp.command("EHLO c");
    EXPECT_EQ(smtp.command("MAIL FROM:<Bob@Spammer.Test>"), "553 5.7.1 <Bob@Spammer.Test>: Sender rejected\r\n");
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<r@y.test>")), 503);
    EXPECT_EQ(code_of(smtp.command("MAIL FROM:<s@x.test>")), 250);
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<ham@y.test>")), 250);
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<spam-trap@y.test>")), 250);
    EXPECT_EQ(code_of(smtp.command("DATA")), 354);
    smtp.send("Subject: buy\r\n\r\nnow\r\n");
    // One matching recipient decides for the whole message.
    EXPECT_EQ(smtp.command("."), "550 5.7.1 <spam-trap@y.test>: Message rejected as spam\r\n");
    EXPECT_EQ(code_of(smtp.command("MAIL FROM:<s@x.test>")), 250);
    EXPECT_EQ(code_of(smtp.command("RCPT TO:<slow@y.test>")), 250);
    EXPECT_EQ(code_of(smtp.command("DATA")), 354);
    smtp.send("Subject: x\r\n\r\nx\r\n");
    EXPECT_EQ(smtp.command("."), "451 4.3.0 Try again later\r\n");
    EXPECT_TRUE(smtp.closed_by_peer());  // close = true
  }
  {
    SmtpSocket smtp("127.0.0.3", sink.port());
    smtp.reply();
    smtp.command("HELO c");  // the ehlo rule covers HELO too
    SmtpSocket other(kLocal, sink.port());
    other.reply();
    other.command("EHLO c");
    EXPECT_EQ(other.command("MAIL FROM:<closer@x.test>"), "421 4.3.2 Service shutting down\r\n");
    EXPECT_TRUE(other.closed_by_peer());  // 421 always closes
  }
  EXPECT_TRUE(sink.stored().empty());
  auto stats = sink.wait_stats([](const nlohmann::json& j) { return j.value("connections", 0) == 5; });
  EXPECT_EQ(stats["messages"], 0);
}

TEST(SinkTest, DataRuleRefusesDataAndMultiLineReplies) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "data"
times = 1
reply = "451 4.3.1 Insufficient system storage\nTry again later"

[[rule]]
stage = "rcpt"
match = "multi"
reply = "550-5.1.1 first line\n550 5.1.1 second line for {rcpt}"
)"));
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  smtp.command("EHLO c");
  smtp.command("MAIL FROM:<s@x.test>");
  EXPECT_EQ(smtp.command("RCPT TO:<multi@y.test>"), "550-5.1.1 first line\r\n550 5.1.1 second line for multi@y.test\r\n");
  EXPECT_EQ(code_of(smtp.command("RCPT TO:<r@y.test>")), 250);
  EXPECT_EQ(smtp.command("DATA"), "451-4.3.1 Insufficient system storage\r\n451 Try again later\r\n");
  EXPECT_EQ(code_of(smtp.command("DATA")), 354);  // times = 1
  smtp.send("x\r\n");
  EXPECT_EQ(code_of(smtp.command(".")), 250);
}

TEST(SinkTest, ReplyDelaySlowsEveryReply) {
  Sink sink(SinkOptions().with_script("reply_delay_ms = 150\n").without_store().without_stats());
  auto start = std::chrono::steady_clock::now();
  SmtpSocket smtp(kLocal, sink.port());
  smtp.reply();
  smtp.send("EHLO c\r\nNOOP\r\n");  // pipelined: each reply delayed on its own
  EXPECT_EQ(code_of(smtp.reply()), 250);
  EXPECT_EQ(code_of(smtp.reply()), 250);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 450ms);
}

TEST(SinkTest, StatsCountsAndSigtermExitsQuicklyWithOpenConnections) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "rcpt"
match = "gone"
reply = "550 5.1.1 gone"
[[rule]]
stage = "rcpt"
match = "later"
reply = "450 4.2.1 later"
)").with_args({"--threads", "2"}));
  // Written once at start-up, all zeros.
  auto initial = sink.read_stats();
  EXPECT_EQ(initial["connections"], 0);
  EXPECT_EQ(initial["by_address"][kLocal]["messages"], 0);

  SmtpSocket a(kLocal, sink.port());
  SmtpSocket b(kLocal, sink.port());
  a.reply();
  b.reply();
  EXPECT_EQ(code_of(send_message(a, "s@x.test", {"r1@y.test", "r2@y.test"}, "x\r\n")), 250);
  EXPECT_EQ(code_of(b.command("EHLO c")), 250);
  EXPECT_EQ(code_of(b.command("MAIL FROM:<s@x.test>")), 250);
  EXPECT_EQ(code_of(b.command("RCPT TO:<gone@y.test>")), 550);
  EXPECT_EQ(code_of(b.command("RCPT TO:<later@y.test>")), 450);
  EXPECT_EQ(code_of(b.command("RCPT TO:<r3@y.test>")), 250);
  EXPECT_EQ(code_of(b.command("DATA")), 354);
  b.send("y\r\n");
  EXPECT_EQ(code_of(b.command(".")), 250);
  // Both connections stay open (b is mid-transaction) while the sink is told to stop.
  EXPECT_EQ(code_of(b.command("MAIL FROM:<s@x.test>")), 250);

  auto start = std::chrono::steady_clock::now();
  int status = sink.process().stop(SIGTERM, std::chrono::seconds(5));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_LT(took, 1500ms);
  EXPECT_TRUE(a.closed_by_peer());
  EXPECT_TRUE(b.closed_by_peer());

  auto stats = sink.read_stats();
  EXPECT_EQ(stats["connections"], 2);
  EXPECT_EQ(stats["messages"], 2);
  EXPECT_EQ(stats["recipients_accepted"], 3);
  EXPECT_EQ(stats["recipients_rejected"], 1);
  EXPECT_EQ(stats["recipients_deferred"], 1);
  EXPECT_EQ(stats["max_concurrent_connections"], 2);
  EXPECT_EQ(stats["by_address"][kLocal]["connections"], 2);
  EXPECT_EQ(stats["by_address"][kLocal]["messages"], 2);
  EXPECT_EQ(stats["by_address"][kLocal]["max_concurrent_connections"], 2);
  EXPECT_FALSE(std::filesystem::exists(sink.stats_file().string() + ".tmp"));
}

TEST(SinkTest, ManyConcurrentConnectionsOnSeveralThreads) {
  Sink sink(SinkOptions().with_args({"--threads", "3"}));
  constexpr int kClients = 12;
  constexpr int kMessagesEach = 5;
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      SmtpSocket smtp(kLocal, sink.port());
      smtp.reply();
      smtp.command("EHLO c");
      for (int m = 0; m < kMessagesEach; ++m) {
        // Whole transaction pipelined, as kurier's client sends it.
        smtp.send("MAIL FROM:<s@x.test>\r\nRCPT TO:<c" + std::to_string(c) + "@y.test>\r\nDATA\r\n");
        bool ok = code_of(smtp.reply()) == 250 && code_of(smtp.reply()) == 250 && code_of(smtp.reply()) == 354;
        smtp.send("Subject: " + std::to_string(m) + "\r\n\r\n..body\r\n.\r\n");
        if (ok && code_of(smtp.reply()) == 250) ++accepted;
      }
      smtp.command("QUIT");
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(accepted.load(), kClients * kMessagesEach);
  EXPECT_EQ(sink.stored().size(), static_cast<std::size_t>(kClients * kMessagesEach));
  auto stats = sink.wait_stats([](const nlohmann::json& j) { return j.value("messages", 0) == kClients * kMessagesEach; });
  EXPECT_EQ(stats["messages"], kClients * kMessagesEach);
  EXPECT_EQ(stats["connections"], kClients);
  EXPECT_EQ(stats["recipients_accepted"], kClients * kMessagesEach);
}

TEST(SinkTest, StarttlsHandshakeWithOpensslClient) {
  const auto openssl = find_program("openssl");
  if (openssl.empty()) GTEST_SKIP() << "openssl not installed";
  Sink sink(SinkOptions().with_args({"--tls"}).without_store());
  {
    SmtpSocket smtp(kLocal, sink.port());
    smtp.reply();
    EXPECT_NE(smtp.command("EHLO c").find("250-STARTTLS\r\n"), std::string::npos);
    EXPECT_EQ(smtp.command("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
  }
  auto result = run({openssl.string(), "s_client", "-starttls", "smtp", "-connect",
                     std::string(kLocal) + ":" + std::to_string(sink.port()), "-ign_eof"},
                    std::chrono::seconds(20), "EHLO again.test\r\nQUIT\r\n");
  const std::string all = result.out + result.err;
  EXPECT_NE(all.find("subject=CN = kurier-sink"), std::string::npos) << all;
  EXPECT_NE(all.find("Cipher is"), std::string::npos) << all;
  EXPECT_EQ(all.find("Cipher is (NONE)"), std::string::npos) << all;
  // After TLS the client starts again with EHLO; STARTTLS is no longer offered.
  EXPECT_NE(all.find("250-kurier-sink Hello again.test"), std::string::npos) << all;
  EXPECT_EQ(all.find("250-STARTTLS"), std::string::npos) << all;
  EXPECT_NE(all.find("221 2.0.0 Bye"), std::string::npos) << all;
}

TEST(SinkTest, ListensOnIpv6LoopbackNextToIpv4) {
  auto result = run({binary("kurier-sink").string(), "--listen", "[::1]:2525", "--listen", "[::1]:bad"},
                    std::chrono::seconds(10));
  EXPECT_EQ(result.exit_code, 2) << result.err;  // malformed address: usage error, nothing bound
  std::unique_ptr<Sink> sink;
  try {
    sink = std::make_unique<Sink>(SinkOptions().with_ips({"127.0.0.1", "::1"}));
  } catch (const std::exception& e) {
    // Some containers have no IPv6 loopback; the sink then fails clearly at start-up.
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  for (const char* ip : {"::1", "127.0.0.1"}) {
    SmtpSocket smtp(ip, sink->port());
    EXPECT_EQ(code_of(smtp.reply()), 220);
    EXPECT_EQ(code_of(send_message(smtp, "s@x.test", {"r@y.test"}, "x\r\n")), 250);
  }
  EXPECT_EQ(sink->stored("::1").size(), 1u);
  EXPECT_EQ(sink->stored("127.0.0.1").size(), 1u);
  auto stats = sink->wait_stats([](const nlohmann::json& j) { return j.value("messages", 0) == 2; });
  EXPECT_EQ(stats["by_address"]["::1"]["messages"], 1);
  EXPECT_EQ(stats["by_address"]["127.0.0.1"]["messages"], 1);
}

TEST(SinkTest, BadScriptOrOptionsExitWithStatus2) {
  TempDir dir;
  auto result = run_sink_script(dir.path() / "typo.toml", "max_conections = 3\n");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("typo.toml:1: unknown key: max_conections"), std::string::npos) << result.err;

  result = run_sink_script(dir.path() / "reply.toml", "[[rule]]\nstage = \"rcpt\"\nreply = \"rejected\"\n");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("reply must start with a code"), std::string::npos) << result.err;

  result = run_sink_script(dir.path() / "stage.toml", "[[rule]]\nstage = \"helo\"\nreply = \"250 ok\"\n");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("stage.toml:2"), std::string::npos) << result.err;

  result = run({binary("kurier-sink").string()}, std::chrono::seconds(10));
  EXPECT_EQ(result.exit_code, 2);  // --listen is required
  result = run({binary("kurier-sink").string(), "--listen", "localhost:25"}, std::chrono::seconds(10));
  EXPECT_EQ(result.exit_code, 2);
}

TEST(SinkTest, AddressInUseExitsWithStatus1) {
  Sink first(SinkOptions().without_store().without_stats());
  auto result = run({binary("kurier-sink").string(), "--listen", "127.0.0.1:" + std::to_string(first.port())},
                    std::chrono::seconds(10));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("127.0.0.1:" + std::to_string(first.port())), std::string::npos) << result.err;
}

}  // namespace
}  // namespace kurier::test
