// Client session tests against the in-test scripted server (tests/smtp/scripted_server.h):
// target fallback, EHLO/HELO, pipelining, per-recipient outcomes, RSET and reuse, byte-exact
// content, SIZE, timeouts, broken connections, STARTTLS. Loopback only; short timeouts.
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/asio.h"
#include "smtp/client.h"
#include "tests/smtp/scripted_server.h"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // g++ 12 false positive on Asio frames

namespace kurier::smtp {
namespace {

using namespace std::chrono_literals;
using test::ScriptedServer;
using test::ServerConn;

// Runs coroutines to completion on one io_context, so a Session can be used across steps.
class Loop {
 public:
  template <typename T>
  T run(asio::awaitable<T> task) {
    std::optional<T> out;
    std::exception_ptr error;
    asio::co_spawn(io_, std::move(task), [&](std::exception_ptr e, T value) {
      error = e;
      if (!e) out = std::move(value);
    });
    drive();
    if (error) std::rethrow_exception(error);
    if (!out) throw std::runtime_error("coroutine did not finish in time");
    return std::move(*out);
  }

  void run(asio::awaitable<void> task) {
    bool finished = false;
    std::exception_ptr error;
    asio::co_spawn(io_, std::move(task), [&](std::exception_ptr e) {
      error = e;
      finished = true;
    });
    drive();
    if (error) std::rethrow_exception(error);
    if (!finished) throw std::runtime_error("coroutine did not finish in time");
  }

 private:
  void drive() {
    io_.restart();
    // run() returns only once nothing is pending: a leaked timer would show as a hang
    // here, which the limit turns into a failure.
    io_.run_for(10s);
  }
  asio::io_context io_;
};

void expect(bool condition, const std::string& what) {
  if (!condition) throw std::runtime_error(what);
}

std::string expect_line(ServerConn& c, const std::string& prefix) {
  std::string line = c.read_line();
  expect(line.starts_with(prefix), "expected '" + prefix + "', got '" + line + "'");
  return line;
}

void ehlo_reply(ServerConn& c, const std::vector<std::string>& extensions) {
  std::string out = extensions.empty() ? "250 scripted.test\r\n" : "250-scripted.test\r\n";
  for (std::size_t i = 0; i < extensions.size(); ++i) {
    out += (i + 1 == extensions.size() ? "250 " : "250-") + extensions[i] + "\r\n";
  }
  c.send(out);
}

void greet(ServerConn& c, const std::vector<std::string>& extensions = {"PIPELINING", "8BITMIME"}) {
  c.reply("220 scripted.test ESMTP");
  expect_line(c, "EHLO client.test");
  ehlo_reply(c, extensions);
}

void serve_quit(ServerConn& c) {
  expect_line(c, "QUIT");
  c.reply("221 2.0.0 Bye");
}

// Reads one transaction line by line (works for pipelined and lock-step clients) and
// accepts everything; returns the content.
std::string serve_transaction(ServerConn& c, std::size_t recipients, std::vector<std::string>* lines = nullptr) {
  std::string mail = expect_line(c, "MAIL FROM:<");
  if (lines) lines->push_back(mail);
  c.reply("250 2.1.0 Ok");
  for (std::size_t i = 0; i < recipients; ++i) {
    std::string rcpt = expect_line(c, "RCPT TO:<");
    if (lines) lines->push_back(rcpt);
    c.reply("250 2.1.5 Ok");
  }
  expect_line(c, "DATA");
  c.reply("354 End data with <CR><LF>.<CR><LF>");
  std::string content = c.read_data();
  c.reply("250 2.0.0 Ok: queued as X1");
  return content;
}

SessionOptions options(std::uint16_t port, std::chrono::milliseconds timeout = 1500ms) {
  SessionOptions o;
  o.helo_name = "client.test";
  o.port = port;
  o.tls = TlsPolicy::disabled;
  o.timeouts = Timeouts{timeout, timeout, timeout, timeout, timeout, timeout,
                        timeout, timeout, timeout, timeout, timeout};
  return o;
}

std::vector<Target> local(int copies = 1) {
  return std::vector<Target>(static_cast<std::size_t>(copies), Target{"mx.test", "127.0.0.1"});
}

Envelope envelope(std::vector<std::string> recipients) {
  Envelope e;
  e.mail_from = "b+token@bounce.test";
  e.recipients = std::move(recipients);
  return e;
}

const std::string kMessage = "Subject: test\r\n\r\nHello.\r\n";

class ClientTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) {
      EXPECT_TRUE(server_->wait()) << "server script did not finish";
      EXPECT_EQ(server_->errors(), std::vector<std::string>{});
    }
  }
  // Waits for the scripts so the test can read what they recorded.
  void finish_server() {
    ASSERT_TRUE(server_->wait());
    EXPECT_EQ(server_->errors(), std::vector<std::string>{});
  }

  Loop loop_;  // first: sessions below must be destroyed before their io_context
  std::unique_ptr<ScriptedServer> server_;
};

TEST_F(ClientTest, ConnectionRefusedOnFirstTargetUsesSecond) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) {
    greet(c);
    serve_quit(c);
  });
  // Nothing listens on 127.0.0.2 (the server binds 127.0.0.1 only): refused at once.
  std::vector<Target> targets{{"bad.test", "not-an-address"}, {"mx1.test", "127.0.0.2"}, {"mx2.test", "127.0.0.1"}};
  OpenResult opened = loop_.run(open_session(targets, options(server_->port())));
  ASSERT_TRUE(opened.session);
  EXPECT_EQ(opened.session->info().target.host, "mx2.test");
  ASSERT_EQ(opened.failures.size(), 2u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "connect");
  EXPECT_TRUE(opened.failures[0].error);
  EXPECT_EQ(opened.failures[1].target.host, "mx1.test");
  EXPECT_EQ(to_string(opened.failures[1].phase), "connect");
  EXPECT_EQ(opened.failures[1].error, boost::system::errc::connection_refused);
  EXPECT_EQ(opened.session->info().greeting.code, 220);
  EXPECT_TRUE(opened.session->info().extensions.esmtp);
  EXPECT_TRUE(opened.session->info().extensions.pipelining);
  EXPECT_TRUE(opened.session->usable());
  loop_.run(opened.session->quit());
  EXPECT_FALSE(opened.session->usable());
}

TEST_F(ClientTest, RefusingGreetingsMoveToNextTarget) {
  int connection = 0;
  server_ = std::make_unique<ScriptedServer>(
      [&connection](ServerConn& c) {
        ++connection;
        if (connection == 1) {
          c.reply("421 4.3.2 Service shutting down");
          return;  // and close, as RFC 5321 §3.8 servers do
        }
        if (connection == 2) {
          c.reply("554 5.7.1 No SMTP service here");
          expect_line(c, "QUIT");  // RFC 5321 §3.1: the client should QUIT after 554
          c.reply("221 Bye");
          return;
        }
        greet(c);
        serve_quit(c);
      },
      3);
  OpenResult opened = loop_.run(open_session(local(3), options(server_->port())));
  ASSERT_TRUE(opened.session);
  ASSERT_EQ(opened.failures.size(), 2u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "greeting");
  EXPECT_EQ(opened.failures[0].reply.code, 421);
  EXPECT_EQ(opened.failures[0].reply.enhanced, "4.3.2");
  EXPECT_FALSE(opened.failures[0].error);
  EXPECT_EQ(opened.failures[1].reply.code, 554);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(server_->accepted(), 3);
}

TEST_F(ClientTest, EhloRefusedFallsBackToHeloAndLockStep) {
  std::vector<std::size_t> reads_per_command;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    c.reply("220 old.test SMTP");
    expect_line(c, "EHLO client.test");
    c.reply("502 5.5.1 Command not implemented");
    expect_line(c, "HELO client.test");
    c.reply("250 old.test");
    // Without PIPELINING every command must wait for the previous reply: each one
    // arrives in a read of its own.
    std::size_t before = c.reads().size();
    expect_line(c, "MAIL FROM:<b+token@bounce.test>");
    expect(c.reads().size() == before + 1 && c.reads().back() == "MAIL FROM:<b+token@bounce.test>\r\n",
           "MAIL not alone: " + c.reads().back());
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:<a@one.test>");
    expect(c.reads().back() == "RCPT TO:<a@one.test>\r\n", "RCPT not alone");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:<b@one.test>");
    c.reply("250 Ok");
    expect_line(c, "DATA");
    expect(c.reads().back() == "DATA\r\n", "DATA not alone");
    c.reply("354 go");
    expect(c.read_data() == kMessage, "content differs");
    c.reply("250 Ok");
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  Session& s = *opened.session;
  EXPECT_FALSE(s.info().extensions.esmtp);
  EXPECT_FALSE(s.info().extensions.pipelining);
  auto env = envelope({"a@one.test", "b@one.test"});
  env.eight_bit = true;  // no 8BITMIME offered: no BODY= parameter (checked by the script)
  TransactionResult r = loop_.run(s.send(env, kMessage));
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.final.code, 250);
  EXPECT_EQ(r.outcome_for(1).code, 250);
  loop_.run(s.quit());
}

TEST_F(ClientTest, PipelinedFlightArrivesInOneRead) {
  bool together = false;
  std::string mail_line;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c, {"PIPELINING", "8BITMIME", "SIZE 1000000", "SMTPUTF8"});
    mail_line = expect_line(c, "MAIL FROM:");
    const std::string& chunk = c.reads().back();
    together = chunk.starts_with("MAIL FROM:") && chunk.find("RCPT TO:<a@one.test>\r\n") != std::string::npos &&
               chunk.find("RCPT TO:<c@one.test>\r\n") != std::string::npos && chunk.ends_with("DATA\r\n");
    expect_line(c, "RCPT TO:<a@one.test>");
    expect_line(c, "RCPT TO:<b@one.test>");
    expect_line(c, "RCPT TO:<c@one.test>");
    expect_line(c, "DATA");
    // All replies in one write: the client must split them.
    c.send("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n");
    c.read_data();
    c.reply("250 2.0.0 Ok");
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  const Extensions& x = opened.session->info().extensions;
  EXPECT_TRUE(x.pipelining && x.eight_bit_mime && x.smtputf8 && x.size);
  EXPECT_EQ(x.size_limit, 1000000u);
  auto env = envelope({"a@one.test", "b@one.test", "c@one.test"});
  env.eight_bit = true;
  env.smtputf8 = true;
  TransactionResult r = loop_.run(opened.session->send(env, kMessage));
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.mail.code, 250);
  ASSERT_EQ(r.rcpt.size(), 3u);
  EXPECT_EQ(r.data.code, 354);
  EXPECT_EQ(r.final.code, 250);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_TRUE(together) << "MAIL, every RCPT and DATA should be written in one flight";
  EXPECT_EQ(mail_line, "MAIL FROM:<b+token@bounce.test> SIZE=" + std::to_string(kMessage.size()) +
                           " BODY=8BITMIME SMTPUTF8");
}

TEST_F(ClientTest, PipeliningOffButOfferedIsLockStep) {
  bool mail_alone = false;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    mail_alone = c.reads().back().find("RCPT") == std::string::npos;
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("250 Ok");
    expect_line(c, "DATA");
    c.reply("354 go");
    c.read_data();
    c.reply("250 Ok");
    serve_quit(c);
  });
  auto o = options(server_->port());
  o.use_pipelining = false;
  OpenResult opened = loop_.run(open_session(local(), o));
  ASSERT_TRUE(opened.session);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.final.code, 250);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_TRUE(mail_alone);
}

TEST_F(ClientTest, PartialRecipientRejection) {
  std::string after;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 2.1.0 Ok");
    expect_line(c, "RCPT TO:<a@one.test>");
    c.reply("250 2.1.5 Ok");
    expect_line(c, "RCPT TO:<nobody@one.test>");
    c.send("550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Try again.\r\n");
    expect_line(c, "RCPT TO:<full@one.test>");
    c.reply("452 4.2.2 Mailbox full");
    expect_line(c, "DATA");
    c.reply("354 go");
    c.read_data();
    c.reply("250 2.0.0 Ok: queued");
    after = c.read_line();  // a delivered transaction needs no RSET
    c.reply("221 Bye");
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  TransactionResult r =
      loop_.run(opened.session->send(envelope({"a@one.test", "nobody@one.test", "full@one.test"}), kMessage));
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.outcome_for(0).code, 250);
  EXPECT_EQ(r.outcome_for(0).enhanced, "2.0.0");
  EXPECT_EQ(r.outcome_for(1).code, 550);
  EXPECT_EQ(r.outcome_for(1).enhanced, "5.1.1");
  EXPECT_EQ(r.outcome_for(1).text, "The email account that you tried to reach does not exist.\nTry again.");
  EXPECT_EQ(r.outcome_for(2).code, 452);
  EXPECT_TRUE(opened.session->usable());
  EXPECT_EQ(opened.session->transactions(), 1u);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(after, "QUIT");
}

TEST_F(ClientTest, AllRecipientsRejectedSendsNoMessageThenRsetAndReuse) {
  std::string after_data_refusal;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("550 5.1.1 No such user");
    expect_line(c, "RCPT TO:");
    c.reply("550 5.1.1 No such user");
    expect_line(c, "DATA");
    c.reply("554 5.5.1 Error: no valid recipients");
    after_data_refusal = c.read_line();  // must be RSET, not message content
    c.reply("250 2.0.0 Ok");
    serve_transaction(c, 1);
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  Session& s = *opened.session;
  TransactionResult r = loop_.run(s.send(envelope({"x@one.test", "y@one.test"}), kMessage));
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.data.code, 554);
  EXPECT_EQ(r.final.code, 0);
  EXPECT_EQ(r.outcome_for(0).code, 550);
  EXPECT_EQ(r.outcome_for(1).code, 550);
  EXPECT_TRUE(s.usable());
  TransactionResult second = loop_.run(s.send(envelope({"ok@one.test"}), kMessage));
  EXPECT_EQ(second.outcome_for(0).code, 250);
  EXPECT_EQ(s.transactions(), 2u);
  loop_.run(s.quit());
  finish_server();
  EXPECT_EQ(after_data_refusal, "RSET");
}

TEST_F(ClientTest, AllRecipientsRejectedButDataAcceptedSendsOnlyDot) {
  std::string content = "unset";
  std::string after;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("550 5.1.1 No such user");
    expect_line(c, "DATA");
    c.reply("354 go ahead anyway");  // a server ignoring RFC 2920 §3.1
    content = c.read_data();
    c.reply("554 5.5.1 no valid recipients");
    after = c.read_line();
    c.reply("250 Ok");
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  TransactionResult r = loop_.run(opened.session->send(envelope({"x@one.test"}), kMessage));
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.data.code, 354);
  EXPECT_EQ(r.final.code, 0) << "no message was delivered";
  EXPECT_EQ(r.outcome_for(0).code, 550);
  EXPECT_TRUE(opened.session->usable());
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(content, "") << "only the terminating dot may be sent";
  EXPECT_EQ(after, "RSET");
}

TEST_F(ClientTest, MailRefusedThenRset) {
  std::vector<std::string> seen;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c, {"8BITMIME"});  // lock-step: nothing after a refused MAIL
    expect_line(c, "MAIL FROM:");
    c.reply("451 4.3.0 Try later");
    seen.push_back(c.read_line());
    c.reply("250 Ok");
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.outcome_for(0).code, 451);
  EXPECT_EQ(r.rcpt[0].code, 0) << "RCPT not reached";
  EXPECT_TRUE(opened.session->usable());
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(seen, std::vector<std::string>{"RSET"});
}

TEST_F(ClientTest, FinalTransientThenRsetAndReuse) {
  std::string after;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("250 Ok");
    expect_line(c, "DATA");
    c.reply("354 go");
    c.read_data();
    c.reply("451 4.7.1 Greylisted, try again later");
    after = c.read_line();
    c.reply("250 Ok");
    serve_transaction(c, 1);
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  Session& s = *opened.session;
  TransactionResult r = loop_.run(s.send(envelope({"a@one.test"}), kMessage));
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.outcome_for(0).code, 451);
  EXPECT_EQ(r.outcome_for(0).enhanced, "4.7.1");
  EXPECT_TRUE(s.usable());
  TransactionResult second = loop_.run(s.send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(second.outcome_for(0).code, 250);
  loop_.run(s.quit());
  finish_server();
  EXPECT_EQ(after, "RSET");
}

TEST_F(ClientTest, RsetRefusedMakesSessionUnusable) {
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("550 No");
    expect_line(c, "DATA");
    c.reply("503 No recipients");
    expect_line(c, "RSET");
    c.reply("500 What?");
    c.read_until_eof();
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.outcome_for(0).code, 550);
  EXPECT_FALSE(opened.session->usable());
  TransactionResult again = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_TRUE(again.error) << "an unusable session refuses new transactions";
}

TEST_F(ClientTest, ContentIsByteExact) {
  std::string long_line(2000, 'L');
  std::vector<std::string> raw_messages{
      ".leading dot\n.\n..\nGr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen\n" + long_line + "\nno newline at end",
      "Subject: x\r\n\r\nbare\rcr and bare\nlf\r\n",
      "X: y\r\n\r\n.\r\n"};
  std::vector<std::string> received;
  std::vector<std::string> mail_lines;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    for (std::size_t i = 0; i < 4; ++i) received.push_back(serve_transaction(c, 1, &mail_lines));
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  Session& s = *opened.session;
  std::vector<std::string> wire;
  for (const auto& m : raw_messages) wire.push_back(to_wire(m));
  // Already in wire form but without the final CRLF: the session adds it.
  wire.push_back("Subject: unterminated\r\n\r\nlast line");
  for (const auto& w : wire) {
    auto env = envelope({"a@one.test"});
    env.eight_bit = true;
    TransactionResult r = loop_.run(s.send(env, w));
    EXPECT_EQ(r.final.code, 250) << r.final.summary() << r.error.message();
  }
  EXPECT_EQ(s.transactions(), 4u);
  loop_.run(s.quit());
  finish_server();
  ASSERT_EQ(received.size(), 4u);
  EXPECT_EQ(received[0], "..leading dot\r\n..\r\n...\r\nGr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen\r\n" + long_line +
                             "\r\nno newline at end\r\n");
  EXPECT_EQ(received[1], "Subject: x\r\n\r\nbare\r\ncr and bare\r\nlf\r\n");
  EXPECT_EQ(received[2], "X: y\r\n\r\n..\r\n");
  EXPECT_EQ(received[3], "Subject: unterminated\r\n\r\nlast line\r\n");
  ASSERT_EQ(mail_lines.size(), 8u);
  EXPECT_TRUE(mail_lines[0].ends_with(" BODY=8BITMIME"));
}

TEST_F(ClientTest, SizeLimitRefusesLocally) {
  std::string mail_line;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c, {"PIPELINING", "SIZE 1000"});
    std::vector<std::string> lines;
    serve_transaction(c, 1, &lines);  // only the small message arrives
    mail_line = lines.at(0);
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  std::string big = "Subject: big\r\n\r\n" + std::string(2000, 'b') + "\r\n";
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), big));
  EXPECT_EQ(r.mail.code, 552);
  EXPECT_EQ(r.mail.enhanced, "5.3.4");
  EXPECT_EQ(r.outcome_for(0).code, 552);
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(opened.session->usable());
  TransactionResult small = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(small.final.code, 250);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(mail_line, "MAIL FROM:<b+token@bounce.test> SIZE=" + std::to_string(kMessage.size()));
}

TEST_F(ClientTest, SilentServerTimesOutAtGreeting) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) { c.read_until_eof(); });
  auto start = std::chrono::steady_clock::now();
  OpenResult opened = loop_.run(open_session(local(), options(server_->port(), 300ms)));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(opened.session);
  ASSERT_EQ(opened.failures.size(), 1u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "greeting");
  EXPECT_EQ(opened.failures[0].error, boost::system::errc::timed_out);
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(ClientTest, ServerStopsAnsweringMidTransaction) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.read_until_eof();  // never answers
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port(), 300ms)));
  ASSERT_TRUE(opened.session);
  auto start = std::chrono::steady_clock::now();
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.error, boost::system::errc::timed_out) << r.error.message();
  EXPECT_EQ(to_string(r.error_phase), "mail");
  EXPECT_EQ(r.outcome_for(0).code, 0) << "no decision";
  EXPECT_FALSE(opened.session->usable());
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 1500ms);
  loop_.run(opened.session->quit());  // harmless on a dead session
}

TEST_F(ClientTest, FinalReplyTimeout) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("250 Ok");
    expect_line(c, "DATA");
    c.reply("354 go");
    c.read_data();
    c.read_until_eof();  // never gives the final reply
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port(), 300ms)));
  ASSERT_TRUE(opened.session);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.error, boost::system::errc::timed_out);
  EXPECT_EQ(to_string(r.error_phase), "final");
  EXPECT_EQ(r.data.code, 354);
  EXPECT_FALSE(opened.session->usable());
}

TEST_F(ClientTest, ServerClosesMidData) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.reply("250 Ok");
    expect_line(c, "RCPT TO:");
    c.reply("250 Ok");
    expect_line(c, "DATA");
    c.reply("354 go");
    c.read_line();  // the first line of content, then hang up
    c.close();
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  std::string message = "Subject: big\r\n\r\n";
  for (int i = 0; i < 20000; ++i) message += "0123456789012345678901234567890123456789012345678901234567890123456789\r\n";
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), message));
  EXPECT_TRUE(r.error);
  EXPECT_TRUE(to_string(r.error_phase) == "content" || to_string(r.error_phase) == "final") << to_string(r.error_phase);
  EXPECT_EQ(r.final.code, 0);
  EXPECT_FALSE(opened.session->usable());
}

TEST_F(ClientTest, GarbageReplyIsAProtocolError) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) {
    greet(c);
    expect_line(c, "MAIL FROM:");
    c.send("HTTP/1.1 400 Bad Request\r\n\r\n");
    c.read_until_eof();
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.error, boost::system::errc::protocol_error);
  EXPECT_EQ(to_string(r.error_phase), "mail");
  EXPECT_FALSE(opened.session->usable());
}

TEST_F(ClientTest, AddressWithLineBreakIsNeverSent) {
  std::vector<std::string> lines;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    serve_transaction(c, 1, &lines);
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  TransactionResult r =
      loop_.run(opened.session->send(envelope({"evil@one.test>\r\nRSET\r\nRCPT TO:<x@y", "good@one.test"}), kMessage));
  EXPECT_EQ(r.outcome_for(0).code, 501);
  EXPECT_EQ(r.outcome_for(1).code, 250);
  loop_.run(opened.session->quit());
  finish_server();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "RCPT TO:<good@one.test>");
}

TEST_F(ClientTest, StartTlsUpgradesAndRepeatsEhlo) {
  test::ensure_test_certificate();
  int ehlo_count = 0;
  std::string content;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    c.reply("220 tls.test ESMTP");
    expect_line(c, "EHLO client.test");
    ++ehlo_count;
    ehlo_reply(c, {"STARTTLS", "8BITMIME"});
    expect_line(c, "STARTTLS");
    c.reply("220 2.0.0 Ready to start TLS");
    c.starttls();
    expect_line(c, "EHLO client.test");
    ++ehlo_count;
    ehlo_reply(c, {"PIPELINING", "8BITMIME", "SIZE 5000000"});
    content = serve_transaction(c, 1);
    serve_quit(c);
  });
  auto o = options(server_->port());
  o.tls = TlsPolicy::opportunistic;
  OpenResult opened = loop_.run(open_session({Target{"localhost", "127.0.0.1"}}, o));
  ASSERT_TRUE(opened.session) << (opened.failures.empty() ? "" : std::string(to_string(opened.failures[0].phase)) + " " +
                                                                    opened.failures[0].error.message());
  const SessionInfo& info = opened.session->info();
  EXPECT_TRUE(info.tls);
  EXPECT_TRUE(info.tls_protocol.starts_with("TLSv1.")) << info.tls_protocol;
  EXPECT_FALSE(info.tls_cipher.empty());
  EXPECT_FALSE(info.extensions.starttls) << "extensions are those announced after TLS";
  EXPECT_TRUE(info.extensions.pipelining);
  EXPECT_EQ(info.extensions.size_limit, 5000000u);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.final.code, 250);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(ehlo_count, 2);
  EXPECT_EQ(content, kMessage);
}

TEST_F(ClientTest, StartTlsDropsPlaintextSentAfter220) {
  test::ensure_test_certificate();
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c, {"STARTTLS"});
    expect_line(c, "STARTTLS");
    // A man in the middle appends a fake EHLO reply to the 220 (STARTTLS response
    // injection); it arrives in the same read as the 220 and must not be believed.
    c.send("220 2.0.0 Ready\r\n250 injected\r\n");
    c.starttls();
    expect_line(c, "EHLO client.test");
    ehlo_reply(c, {"PIPELINING", "SIZE 5000000"});
    serve_quit(c);
  });
  auto o = options(server_->port());
  o.tls = TlsPolicy::required;
  OpenResult opened = loop_.run(open_session(local(), o));
  ASSERT_TRUE(opened.session);
  EXPECT_TRUE(opened.session->info().tls);
  EXPECT_EQ(opened.session->info().extensions.size_limit, 5000000u);
  EXPECT_TRUE(opened.session->info().extensions.pipelining);
  loop_.run(opened.session->quit());
}

TEST_F(ClientTest, TlsHandshakeFailureIsFollowedByAPlaintextConnection) {
  int connection = 0;
  server_ = std::make_unique<ScriptedServer>(
      [&](ServerConn& c) {
        ++connection;
        if (connection == 1) {
          greet(c, {"STARTTLS"});
          expect_line(c, "STARTTLS");
          c.reply("220 go ahead");
          // Answer the ClientHello with plaintext. (Sent before it, it would be
          // dropped unread as bytes that followed the 220.)
          expect(!c.read_chunk().empty(), "no ClientHello");
          c.send("this is not a TLS server hello\r\n");
          c.read_until_eof();
          return;
        }
        greet(c, {"PIPELINING"});
        serve_quit(c);
      },
      2);
  auto o = options(server_->port());
  o.tls = TlsPolicy::opportunistic;
  OpenResult opened = loop_.run(open_session(local(2), o));
  ASSERT_TRUE(opened.session);
  EXPECT_FALSE(opened.session->info().tls);
  ASSERT_EQ(opened.failures.size(), 1u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "starttls");
  EXPECT_TRUE(opened.failures[0].error);
  EXPECT_NE(opened.failures[0].error, boost::system::errc::timed_out) << "the handshake itself must fail";
  loop_.run(opened.session->quit());
}

// A server that offers STARTTLS, says 220 and then answers the ClientHello with plaintext.
void broken_tls(ServerConn& c) {
  greet(c, {"STARTTLS", "PIPELINING"});
  expect_line(c, "STARTTLS");
  c.reply("220 2.0.0 go ahead");
  expect(!c.read_chunk().empty(), "no ClientHello");
  c.send("this is not a TLS server hello\r\n");
  c.read_until_eof();
}

TEST_F(ClientTest, TlsHandshakeFailureOpportunisticRetriesSameTargetInPlaintext) {
  int connection = 0;
  std::string content;
  server_ = std::make_unique<ScriptedServer>(
      [&](ServerConn& c) {
        if (++connection == 1) return broken_tls(c);
        c.reply("220 scripted.test ESMTP");
        expect_line(c, "EHLO client.test");
        ehlo_reply(c, {"STARTTLS", "PIPELINING"});  // offered again: must not be used
        content = serve_transaction(c, 1);
        serve_quit(c);
      },
      2);
  auto o = options(server_->port());
  o.tls = TlsPolicy::opportunistic;
  OpenResult opened = loop_.run(open_session(local(1), o));
  ASSERT_TRUE(opened.session) << "one target only: the plaintext retry must be on it";
  EXPECT_FALSE(opened.session->info().tls);
  EXPECT_TRUE(opened.session->info().tls_fallback);
  ASSERT_EQ(opened.failures.size(), 1u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "starttls");
  EXPECT_NE(opened.failures[0].error, boost::system::errc::timed_out);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.final.code, 250);
  loop_.run(opened.session->quit());
  finish_server();
  EXPECT_EQ(connection, 2);
  EXPECT_EQ(content, kMessage);
}

TEST_F(ClientTest, TlsHandshakeFailureRequiredNeverFallsBackToPlaintext) {
  int connections = 0;
  server_ = std::make_unique<ScriptedServer>(
      [&](ServerConn& c) {
        ++connections;
        broken_tls(c);
      },
      1);
  auto o = options(server_->port());
  o.tls = TlsPolicy::required;
  OpenResult opened = loop_.run(open_session(local(1), o));
  EXPECT_FALSE(opened.session);
  ASSERT_EQ(opened.failures.size(), 1u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "starttls");
  EXPECT_TRUE(opened.failures[0].error);
  finish_server();
  EXPECT_EQ(connections, 1);
}

TEST_F(ClientTest, TlsRequiredButNotOfferedSkipsTarget) {
  int quits = 0;
  server_ = std::make_unique<ScriptedServer>(
      [&](ServerConn& c) {
        greet(c, {"PIPELINING"});
        expect_line(c, "QUIT");
        ++quits;
        c.reply("221 Bye");
      },
      2);
  auto o = options(server_->port());
  o.tls = TlsPolicy::required;
  OpenResult opened = loop_.run(open_session(local(2), o));
  EXPECT_FALSE(opened.session);
  ASSERT_EQ(opened.failures.size(), 2u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "starttls");
  EXPECT_EQ(to_string(opened.failures[1].phase), "starttls");
  finish_server();
  EXPECT_EQ(quits, 2);
}

TEST_F(ClientTest, StartTlsRefusedOpportunisticContinuesInPlaintext) {
  server_ = std::make_unique<ScriptedServer>([](ServerConn& c) {
    greet(c, {"STARTTLS", "PIPELINING"});
    expect_line(c, "STARTTLS");
    c.reply("454 4.7.0 TLS not available due to local problem");
    serve_transaction(c, 1);
    serve_quit(c);
  });
  auto o = options(server_->port());
  o.tls = TlsPolicy::opportunistic;
  OpenResult opened = loop_.run(open_session(local(), o));
  ASSERT_TRUE(opened.session);
  EXPECT_FALSE(opened.session->info().tls);
  TransactionResult r = loop_.run(opened.session->send(envelope({"a@one.test"}), kMessage));
  EXPECT_EQ(r.final.code, 250);
  loop_.run(opened.session->quit());
}

TEST_F(ClientTest, ManyTransactionsOnOneSession) {
  constexpr int kMessages = 200;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c);
    for (int i = 0; i < kMessages; ++i) serve_transaction(c, 2);
    serve_quit(c);
  });
  OpenResult opened = loop_.run(open_session(local(), options(server_->port())));
  ASSERT_TRUE(opened.session);
  auto env = envelope({"a@one.test", "b@one.test"});
  int delivered = 0;
  for (int i = 0; i < kMessages; ++i) {
    TransactionResult r = loop_.run(opened.session->send(env, kMessage));
    if (r.outcome_for(0).code == 250 && r.outcome_for(1).code == 250) ++delivered;
  }
  EXPECT_EQ(delivered, kMessages);
  EXPECT_EQ(opened.session->transactions(), static_cast<std::size_t>(kMessages));
  loop_.run(opened.session->quit());
}

// Certificate checks (MTA-STS, RFC 8461 §4.2). The scripted server's certificate is
// self-signed for "localhost": it never verifies against the default trust store.
TEST_F(ClientTest, EnforcedCertificateCheckRefusesUnverifiedServerWithoutPlaintextRetry) {
  test::ensure_test_certificate();
  int connections = 0;
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    ++connections;
    greet(c, {"STARTTLS"});
    expect_line(c, "STARTTLS");
    c.reply("220 2.0.0 Ready");
    c.starttls();
    expect_line(c, "QUIT");  // nothing else crosses the unverified channel
  });
  auto o = options(server_->port());
  o.tls = TlsPolicy::opportunistic;  // even so: an enforced check never falls back
  o.cert_check = CertCheck::enforce;
  OpenResult opened = loop_.run(open_session({Target{"mx.test", "127.0.0.1"}}, o));
  EXPECT_FALSE(opened.session);
  ASSERT_EQ(opened.failures.size(), 1u);
  EXPECT_EQ(to_string(opened.failures[0].phase), "starttls");
  EXPECT_EQ(opened.failures[0].detail, "certificate verify failed: self-signed certificate");
  finish_server();
  EXPECT_EQ(connections, 1);
}

TEST_F(ClientTest, ReportedCertificateCheckRecordsTheVerdictAndGoesOn) {
  test::ensure_test_certificate();
  server_ = std::make_unique<ScriptedServer>([&](ServerConn& c) {
    greet(c, {"STARTTLS"});
    expect_line(c, "STARTTLS");
    c.reply("220 2.0.0 Ready");
    c.starttls();
    expect_line(c, "EHLO client.test");
    ehlo_reply(c, {"PIPELINING"});
    serve_quit(c);
  });
  auto o = options(server_->port());
  o.tls = TlsPolicy::opportunistic;
  o.cert_check = CertCheck::report;
  OpenResult opened = loop_.run(open_session({Target{"mx.test", "127.0.0.1"}}, o));
  ASSERT_TRUE(opened.session);
  const SessionInfo& info = opened.session->info();
  EXPECT_TRUE(info.tls);
  EXPECT_FALSE(info.tls_verified);
  EXPECT_EQ(info.tls_verify, "self-signed certificate");
  loop_.run(opened.session->quit());
  finish_server();
}

}  // namespace
}  // namespace kurier::smtp
