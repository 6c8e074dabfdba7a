// Client against Postfix's real smtp-sink on 127.0.0.1:<free port>: pipelined delivery,
// connection reuse, dumped content, and (with -f RCPT) refused recipients then RSET.
// Each smtp-sink is a ChildProcess stopped by PID; skipped when smtp-sink is missing.
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/asio.h"
#include "smtp/client.h"
#include "tests/common/process.h"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // g++ 12 false positive on Asio frames

namespace kurier::smtp {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// smtp-sink's own command timeout (-t, seconds): longer than any test step.
constexpr int kSinkTimeoutSeconds = 10;

class SmtpSink {
 public:
  SmtpSink(const fs::path& dump_dir, std::vector<std::string> extra_flags) : port_(test::free_tcp_port()) {
    fs::path program = test::find_program("smtp-sink");
    if (program.empty()) return;
    std::vector<std::string> argv{program.string()};
    if (geteuid() == 0) {
      // smtp-sink refuses to run as root without a user to switch to.
      argv.insert(argv.end(), {"-u", "nobody"});
    }
    argv.insert(argv.end(), {"-t", std::to_string(kSinkTimeoutSeconds), "-d", (dump_dir / "msg.").string()});
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    argv.push_back("127.0.0.1:" + std::to_string(port_));
    argv.push_back("16");  // listen backlog
    process_ = test::ChildProcess(argv, dump_dir.parent_path() / "sink.log");
    ready_ = test::wait_for_tcp("127.0.0.1", port_, 5s);
  }
  bool ready() const { return ready_; }
  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_;
  test::ChildProcess process_;
  bool ready_ = false;
};

template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) out = std::move(value);
  });
  io.restart();
  io.run_for(20s);
  if (error) std::rethrow_exception(error);
  if (!out) throw std::runtime_error("coroutine did not finish");
  return std::move(*out);
}

void run(asio::io_context& io, asio::awaitable<void> task) {
  asio::co_spawn(io, std::move(task), asio::detached);
  io.restart();
  io.run_for(20s);
}

SessionOptions sink_options(std::uint16_t port) {
  SessionOptions o;
  o.helo_name = "client.test";
  o.port = port;
  o.tls = TlsPolicy::opportunistic;  // smtp-sink offers no STARTTLS: plaintext
  auto t = 3000ms;
  o.timeouts = Timeouts{t, t, t, t, t, t, t, t, t, t, t};
  return o;
}

std::vector<std::string> dumps(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) out.push_back(test::read_file(entry.path()));
  std::sort(out.begin(), out.end());
  return out;
}

class SmtpSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::find_program("smtp-sink").empty()) GTEST_SKIP() << "smtp-sink not installed (Debian: postfix)";
    dump_dir_ = tmp_.path() / "dumps";
    fs::create_directory(dump_dir_);
    // smtp-sink drops to `nobody` before it writes the dumps.
    fs::permissions(tmp_.path(), fs::perms::all);
    fs::permissions(dump_dir_, fs::perms::all);
  }

  asio::io_context io_;
  test::TempDir tmp_;
  fs::path dump_dir_;
};

TEST_F(SmtpSinkTest, DeliversSeveralMessagesOnOneConnection) {
  SmtpSink sink(dump_dir_, {});
  ASSERT_TRUE(sink.ready());
  OpenResult opened = run(io_, open_session({Target{"sink.test", "127.0.0.1"}}, sink_options(sink.port())));
  ASSERT_TRUE(opened.session) << (opened.failures.empty() ? "" : std::string(to_string(opened.failures[0].phase)));
  Session& s = *opened.session;
  EXPECT_TRUE(s.info().extensions.esmtp);
  EXPECT_TRUE(s.info().extensions.pipelining);
  EXPECT_TRUE(s.info().extensions.eight_bit_mime);
  EXPECT_FALSE(s.info().tls);

  constexpr int kMessages = 3;
  for (int i = 0; i < kMessages; ++i) {
    Envelope env;
    env.mail_from = "b+" + std::to_string(i) + "@bounce.test";
    env.recipients = {"r" + std::to_string(i) + "a@dest.test", "r" + std::to_string(i) + "b@dest.test"};
    env.eight_bit = i == 1;
    std::string message = to_wire("Subject: message " + std::to_string(i) + "\n\n.dot line\nGr\xc3\xbc\xc3\x9f" +
                                  "e\nend " + std::to_string(i));
    TransactionResult r = run(io_, s.send(env, message));
    EXPECT_FALSE(r.error) << r.error.message() << " in " << to_string(r.error_phase);
    EXPECT_EQ(r.mail.code, 250);
    EXPECT_EQ(r.data.code, 354);
    EXPECT_EQ(r.final.code, 250);
    EXPECT_EQ(r.final.enhanced, "2.0.0");
    EXPECT_EQ(r.outcome_for(1).code, 250);
    EXPECT_TRUE(s.usable());
  }
  EXPECT_EQ(s.transactions(), static_cast<std::size_t>(kMessages));
  run(io_, s.quit());

  auto files = dumps(dump_dir_);
  ASSERT_EQ(files.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    const std::string& d = files[static_cast<std::size_t>(i)];
    std::string n = std::to_string(i);
    EXPECT_NE(d.find("X-Mail-Args: <b+" + n + "@bounce.test>" + (i == 1 ? " BODY=8BITMIME" : "") + "\n"),
              std::string::npos)
        << d;
    EXPECT_NE(d.find("X-Rcpt-Args: <r" + n + "a@dest.test>\nX-Rcpt-Args: <r" + n + "b@dest.test>\n"),
              std::string::npos);
    // smtp-sink undoes the dot-stuffing and stores LF line endings.
    EXPECT_NE(d.find("Subject: message " + n + "\n\n.dot line\nGr\xc3\xbc\xc3\x9f" "e\nend " + n + "\n"),
              std::string::npos)
        << d;
  }
}

TEST_F(SmtpSinkTest, RefusedRecipientsThenRsetKeepSessionUsable) {
  // -f RCPT: every RCPT gets "500 5.3.0"; it also turns PIPELINING off (lock-step).
  SmtpSink sink(dump_dir_, {"-f", "RCPT"});
  ASSERT_TRUE(sink.ready());
  OpenResult opened = run(io_, open_session({Target{"sink.test", "127.0.0.1"}}, sink_options(sink.port())));
  ASSERT_TRUE(opened.session);
  Session& s = *opened.session;
  EXPECT_FALSE(s.info().extensions.pipelining);
  Envelope env;
  env.mail_from = "b@bounce.test";
  env.recipients = {"x@dest.test", "y@dest.test"};
  for (int i = 0; i < 2; ++i) {
    TransactionResult r = run(io_, s.send(env, "Subject: x\r\n\r\nbody\r\n"));
    EXPECT_FALSE(r.error) << r.error.message();
    EXPECT_EQ(r.mail.code, 250);
    EXPECT_EQ(r.outcome_for(0).code, 500);
    EXPECT_EQ(r.outcome_for(0).enhanced, "5.3.0");
    EXPECT_EQ(r.outcome_for(1).code, 500);
    EXPECT_EQ(r.data.code, 0) << "DATA is not sent without an accepted recipient";
    EXPECT_TRUE(s.usable()) << "RSET should have been accepted";
  }
  run(io_, s.quit());
  EXPECT_TRUE(dumps(dump_dir_).empty());
}

}  // namespace
}  // namespace kurier::smtp
