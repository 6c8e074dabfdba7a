// kurier-sink fault modes (script rules with `fault`): the real binary on loopback,
// observed byte by byte with a raw socket, because what these faults send is exactly
// what an SMTP client must not trust. Each test checks what arrives (or not), how the
// connection ends (FIN, RST, still open), and that the sink keeps serving afterwards.
#include <cerrno>
#include <chrono>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/sink/sink_harness.h"

namespace kurier::test {
namespace {

using namespace std::chrono_literals;

// How a read ended.
enum class End { kData, kEof, kReset, kTimeout };

// A raw TCP client: reads whatever comes, tells FIN from RST from silence.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("connect failed");
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // Appends to `received` until it holds `want` bytes, the peer closes, or `timeout`
  // passes without new data.
  End read(std::size_t want, std::chrono::milliseconds timeout = 3s) {
    char chunk[65536];
    while (received.size() < want) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return End::kTimeout;
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n == 0) return End::kEof;
      if (n < 0) return errno == ECONNRESET ? End::kReset : End::kEof;
      received.append(chunk, static_cast<std::size_t>(n));
    }
    return End::kData;
  }
  // The next line not returned yet, with its CRLF ("" if the connection ends first).
  std::string line(std::chrono::milliseconds timeout = 3s) {
    for (;;) {
      auto end = received.find("\r\n", consumed_);
      if (end != std::string::npos) {
        std::string out = received.substr(consumed_, end + 2 - consumed_);
        consumed_ = end + 2;
        return out;
      }
      if (read(received.size() + 1, timeout) != End::kData) return {};
    }
  }
  // Reads a whole (possibly multi-line) reply.
  std::string reply() {
    std::string out;
    for (;;) {
      std::string l = line();
      out += l;
      if (l.size() < 4 || l[3] != '-') return out;
    }
  }
  std::string command(const std::string& text) {
    send(text + "\r\n");
    return reply();
  }
  // Reads until the connection ends; returns how.
  End until_closed(std::chrono::milliseconds timeout = 3s) {
    for (;;) {
      End end = read(received.size() + 1, timeout);
      if (end != End::kData) return end;
    }
  }

  std::string received;

 private:
  int fd_ = -1;
  std::size_t consumed_ = 0;
};

int faults(const Sink& sink, int expected) {
  auto stats = sink.wait_stats([&](const nlohmann::json& j) { return j.value("faults", 0) >= expected; });
  return stats.value("faults", -1);
}

// The sink still serves a normal transaction after a fault.
void expect_still_serving(Sink& sink) {
  SmtpSocket smtp("127.0.0.1", sink.port());
  EXPECT_EQ(code_of(smtp.reply()), 220);
  EXPECT_EQ(code_of(send_message(smtp, "s@x.test", {"ok@y.test"}, "Subject: ok\r\n\r\nok\r\n")), 250);
}

TEST(SinkFaultTest, DropBeforeGreetingClosesWithoutAByte) {
  Sink sink(SinkOptions().with_script("[[rule]]\nstage = \"connect\"\nfault = \"drop\"\ntimes = 1\n"));
  {
    RawClient raw(sink.port());
    EXPECT_NE(raw.until_closed(), End::kTimeout);
    EXPECT_EQ(raw.received, "");
  }
  EXPECT_EQ(faults(sink, 1), 1);
  expect_still_serving(sink);
}

TEST(SinkFaultTest, DropAfterMailAndBeforeTheFinalReply) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "mail"
match = "drop-at-mail@*"
fault = "drop"
[[rule]]
stage = "message"
match = "drop-at-dot@*"
fault = "drop"
)"));
  {
    RawClient raw(sink.port());
    EXPECT_EQ(raw.line().substr(0, 4), "220 ");
    EXPECT_EQ(raw.command("EHLO c.test").substr(0, 4), "250-");
    raw.send("MAIL FROM:<drop-at-mail@x.test>\r\n");
    EXPECT_NE(raw.until_closed(), End::kTimeout);
    EXPECT_EQ(raw.received.find("MAIL"), std::string::npos);
    EXPECT_TRUE(raw.received.ends_with("ENHANCEDSTATUSCODES\r\n")) << "no reply to MAIL";
  }
  {
    RawClient raw(sink.port());
    raw.line();
    raw.command("EHLO c.test");
    EXPECT_EQ(raw.command("MAIL FROM:<s@x.test>").substr(0, 3), "250");
    EXPECT_EQ(raw.command("RCPT TO:<drop-at-dot@y.test>").substr(0, 3), "250");
    EXPECT_EQ(raw.command("DATA").substr(0, 3), "354");
    const std::size_t before = raw.received.size();
    raw.send("Subject: x\r\n\r\nbody\r\n.\r\n");
    EXPECT_NE(raw.until_closed(), End::kTimeout);
    EXPECT_EQ(raw.received.size(), before) << "closed before the final reply";
  }
  EXPECT_EQ(faults(sink, 2), 2);
  EXPECT_TRUE(sink.stored().empty()) << "a message dropped before its 250 was not accepted";
}

TEST(SinkFaultTest, ContentStageDropsInTheMiddleOfData) {
  Sink sink(SinkOptions().with_script("[[rule]]\nstage = \"content\"\nmatch = \"mid*\"\nfault = \"drop\"\n"));
  RawClient raw(sink.port());
  raw.line();
  raw.command("EHLO c.test");
  raw.command("MAIL FROM:<s@x.test>");
  raw.command("RCPT TO:<mid@y.test>");
  EXPECT_EQ(raw.command("DATA").substr(0, 3), "354");
  const std::size_t before = raw.received.size();
  raw.send("Subject: first line\r\n");
  EXPECT_NE(raw.until_closed(), End::kTimeout);
  EXPECT_EQ(raw.received.size(), before);
  EXPECT_EQ(faults(sink, 1), 1);
  EXPECT_TRUE(sink.stored().empty());
  expect_still_serving(sink);  // "ok@" does not match "mid*"
}

TEST(SinkFaultTest, ResetRightAfterTheFinal250KeepsTheMessage) {
  Sink sink(SinkOptions().with_script(
      "[[rule]]\nstage = \"message\"\nreply = \"250 2.0.0 Ok: queued\"\nfault = \"reset\"\n"));
  RawClient raw(sink.port());
  raw.line();
  raw.command("EHLO c.test");
  raw.command("MAIL FROM:<s@x.test>");
  raw.command("RCPT TO:<r@y.test>");
  raw.command("DATA");
  raw.send("Subject: x\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(raw.line(), "250 2.0.0 Ok: queued\r\n");
  EXPECT_EQ(raw.until_closed(), End::kReset);
  EXPECT_EQ(sink.stored().size(), 1u) << "the 250 was sent: the message is accepted";
}

TEST(SinkFaultTest, HangNeverAnswersButKeepsTheConnectionOpen) {
  Sink sink(SinkOptions().with_script("[[rule]]\nstage = \"rcpt\"\nfault = \"hang\"\n"));
  RawClient raw(sink.port());
  raw.line();
  raw.command("EHLO c.test");
  raw.command("MAIL FROM:<s@x.test>");
  const std::size_t before = raw.received.size();
  raw.send("RCPT TO:<r@y.test>\r\n");
  EXPECT_EQ(raw.read(before + 1, 700ms), End::kTimeout);
  EXPECT_TRUE(raw.send("NOOP\r\n")) << "the sink still reads";
  EXPECT_EQ(raw.read(before + 1, 300ms), End::kTimeout) << "and still says nothing";
  EXPECT_EQ(faults(sink, 1), 1);
}

TEST(SinkFaultTest, GarbageAndLongLineReplaceTheReply) {
  Sink sink(SinkOptions().with_script(R"(
[[rule]]
stage = "connect"
fault = "garbage"
times = 1
[[rule]]
stage = "rcpt"
reply = "550 5.1.1 no"
fault = "long_line"
)"));
  {
    RawClient raw(sink.port());
    raw.read(20);
    EXPECT_TRUE(raw.received.starts_with("HTTP/1.1 400 Bad Request\r\n")) << raw.received;
    raw.read(57);
    EXPECT_NE(raw.received.find(std::string(1, '\0')), std::string::npos) << "a NUL byte";
  }
  RawClient raw(sink.port());
  EXPECT_EQ(raw.line(), "220 kurier-sink ESMTP\r\n");
  raw.command("EHLO c.test");
  raw.command("MAIL FROM:<s@x.test>");
  std::string line = (raw.send("RCPT TO:<r@y.test>\r\n"), raw.line());
  EXPECT_EQ(line.size(), 4 + 1024 * 1024 + 2);
  EXPECT_TRUE(line.starts_with("550 xxxx"));
  EXPECT_EQ(code_of(raw.command("NOOP")), 250) << "the session goes on after a long line";
  EXPECT_EQ(faults(sink, 2), 2);
}

TEST(SinkFaultTest, EndlessMultiLineReplyNeverEnds) {
  Sink sink(SinkOptions().with_script("[[rule]]\nstage = \"ehlo\"\nreply = \"250 x\"\nfault = \"endless\"\ntimes = 1\n"));
  {
    RawClient raw(sink.port());
    raw.line();
    raw.send("EHLO c.test\r\n");
    constexpr std::size_t kEnough = 4 * 1024 * 1024;
    EXPECT_EQ(raw.read(kEnough), End::kData);
    EXPECT_TRUE(raw.received.find("\r\n250 ") == std::string::npos) << "never a last line";
    EXPECT_NE(raw.received.find("\r\n250-this reply never ends\r\n"), std::string::npos);
  }
  EXPECT_EQ(faults(sink, 1), 1);
  expect_still_serving(sink);  // times = 1: the writer noticed the close and stopped
}

TEST(SinkFaultTest, BadTlsAnswersStarttlsWithPlaintext) {
  Sink sink(SinkOptions().with_args({"--tls"}).with_script("[[rule]]\nstage = \"starttls\"\nfault = \"bad_tls\"\n"));
  RawClient raw(sink.port());
  raw.line();
  EXPECT_NE(raw.command("EHLO c.test").find("250-STARTTLS\r\n"), std::string::npos);
  EXPECT_EQ(raw.command("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(raw.line(), "this is not a TLS handshake\r\n");
  EXPECT_NE(raw.until_closed(), End::kTimeout);
  EXPECT_EQ(faults(sink, 1), 1);
}

TEST(SinkFaultTest, StarttlsRuleCanRefuseTls) {
  Sink sink(SinkOptions().with_args({"--tls"}).with_script(
      "[[rule]]\nstage = \"starttls\"\nreply = \"454 4.7.0 TLS not available\"\n"));
  RawClient raw(sink.port());
  raw.line();
  raw.command("EHLO c.test");
  EXPECT_EQ(raw.command("STARTTLS"), "454 4.7.0 TLS not available\r\n");
  EXPECT_EQ(code_of(raw.command("MAIL FROM:<s@x.test>")), 250) << "still in plaintext, still usable";
}

TEST(SinkFaultTest, BadFaultRulesExitWithStatus2) {
  TempDir dir;
  auto run_script = [&](const std::string& text) { return run_sink_script(dir.path() / "s.toml", text); };
  auto r = run_script("[[rule]]\nstage = \"rcpt\"\nfault = \"explode\"\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("s.toml:3: fault: expected drop, reset"), std::string::npos) << r.err;
  r = run_script("[[rule]]\nstage = \"content\"\nfault = \"garbage\"\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("stage content: needs fault drop, reset or hang"), std::string::npos) << r.err;
  r = run_script("[[rule]]\nstage = \"rcpt\"\nfault = \"bad_tls\"\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("only at stage starttls"), std::string::npos) << r.err;
  r = run_script("[[rule]]\nstage = \"rcpt\"\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("without reply or fault"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kurier::test
