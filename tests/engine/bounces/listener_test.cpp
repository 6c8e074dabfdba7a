// The bounce listener (engine/bounces/listener.h) with a real SMTP client: Python's
// smtplib (/usr/bin/python3, Debian's) on loopback. The protocol (EHLO, RCPT only for
// the VERP domains, dot un-stuffing, size limit, 451 when applying fails, RSET, NOOP,
// no AUTH) and the store-backed listener answering 250 only once the bounce is in the
// queue. Test thread plus the listener's own.
#include <gtest/gtest.h>

#include <mutex>

#include <nlohmann/json.hpp>

#include "engine/bounces/listener.h"
#include "engine/intake/campaign.h"
#include "engine/core/verp.h"
#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

// Runs an smtplib session against 127.0.0.1:port; the script prints one JSON object.
nlohmann::json run_client(const std::string& body, std::uint16_t port) {
  const std::string script = "import json, smtplib, socket, sys\n"
                             "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)\n"
                             "out = {}\n" +
                             body + "print(json.dumps(out))\n";
  auto r = test::run({kPython, "-c", script, std::to_string(port)}, std::chrono::seconds(30));
  if (r.exit_code != 0) throw std::runtime_error("client failed: " + r.err);
  return nlohmann::json::parse(r.out);
}

TEST(BounceListenerProtocol, SpeaksSmtpForTheVerpDomainOnly) {
  if (!std::filesystem::exists(kPython)) FAIL() << "Debian's python3 is required (scripts/install-deps.sh)";
  std::mutex mutex;
  std::vector<std::string> received;
  BounceListenerOptions options;
  options.listen = "127.0.0.1:0";
  options.hostname = "bounces.sender.test";
  options.max_message_bytes = 4000;
  BounceListener listener(
      [&](std::string_view raw) {
        if (raw.find("FAIL-ME") != std::string_view::npos) throw std::runtime_error("disk full");
        std::lock_guard lock(mutex);
        received.emplace_back(raw);
      },
      [](std::string_view domain) { return domain == "bounce.sender.test"; }, options);
  listener.start();

  auto out = run_client(R"(
code, text = s.ehlo('relay.test')
out['ehlo'] = [code, text.decode()]
out['noop'] = s.noop()[0]
out['mail'] = s.docmd('MAIL FROM:<> SIZE=100')[0]
out['foreign'] = s.docmd('RCPT TO:<b+abc@other.test>')[0]
out['ours'] = s.docmd('RCPT TO:<b+abc@Bounce.Sender.Test>')[0]
out['data'] = s.data(b'Subject: t\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n')[0]
out['rset'] = s.rset()[0]
try:
    s.sendmail('', ['b+abc@bounce.sender.test'], b'Subject: x\r\n\r\nFAIL-ME\r\n')
    out['failing'] = 250
except smtplib.SMTPDataError as e:
    out['failing'] = e.smtp_code
s.docmd('MAIL FROM:<>')
s.docmd('RCPT TO:<b+abc@bounce.sender.test>')
try:
    out['big'] = s.data(b'Subject: big\r\n\r\n' + (b'y' * 70 + b'\r\n') * 80)[0]
except smtplib.SMTPDataError as e:
    out['big'] = e.smtp_code
out['big_size'] = s.docmd('MAIL FROM:<> SIZE=999999')[0]
s.rset()
out['auth'] = s.docmd('AUTH PLAIN AGZvbwBiYXI=')[0]
out['rcpt_first'] = s.docmd('RCPT TO:<b+abc@bounce.sender.test>')[0]
out['postmaster'] = [s.docmd('MAIL FROM:<a@b.test>')[0], s.docmd('RCPT TO:<postmaster>')[0]]
out['quit'] = s.quit()[0]
)",
                        listener.port());
  EXPECT_EQ(out["ehlo"][0], 250);
  const std::string ehlo = out["ehlo"][1];
  EXPECT_NE(ehlo.find("bounces.sender.test"), std::string::npos);
  EXPECT_NE(ehlo.find("PIPELINING"), std::string::npos);
  EXPECT_NE(ehlo.find("SIZE 4000"), std::string::npos);
  EXPECT_EQ(ehlo.find("AUTH"), std::string::npos);
  EXPECT_EQ(out["noop"], 250);
  EXPECT_EQ(out["mail"], 250);
  EXPECT_EQ(out["foreign"], 550);
  EXPECT_EQ(out["ours"], 250);
  EXPECT_EQ(out["data"], 250);
  EXPECT_EQ(out["rset"], 250);
  EXPECT_EQ(out["failing"], 451) << "a failure to apply must make the sender retry";
  EXPECT_EQ(out["big"], 552);
  EXPECT_EQ(out["big_size"], 552);
  EXPECT_EQ(out["auth"], 502);
  EXPECT_EQ(out["rcpt_first"], 503);
  EXPECT_EQ(out["postmaster"][0], 250);
  EXPECT_EQ(out["postmaster"][1], 250);
  EXPECT_EQ(out["quit"], 221);

  std::lock_guard lock(mutex);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0],
            "Return-Path: <>\r\nDelivered-To: b+abc@Bounce.Sender.Test\r\n"
            "Subject: t\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n")
      << "smtplib sent the lines dot-stuffed; the listener un-stuffs them";
  auto stats = listener.stats();
  EXPECT_EQ(stats.messages, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.oversized, 2u);
  EXPECT_EQ(stats.rejected_recipients, 1u);
  EXPECT_EQ(stats.connections, 1u);
}

TEST(BounceListenerProtocol, PipelinedCommandsAreAnsweredInOrder) {
  std::atomic<int> messages{0};
  BounceListenerOptions options;
  options.listen = "127.0.0.1:0";
  BounceListener listener([&](std::string_view) { ++messages; }, [](std::string_view) { return true; }, options);
  listener.start();
  // One write with the whole transaction, as a PIPELINING client may send it.
  auto out = run_client(R"(
s.ehlo('x')
s.sock.sendall(b'MAIL FROM:<>\r\nRCPT TO:<b+1@d.test>\r\nRCPT TO:<b+2@d.test>\r\nDATA\r\n')
codes = [s.getreply()[0] for _ in range(4)]
s.sock.sendall(b'Subject: p\r\n\r\nhi\r\n.\r\nNOOP\r\n')
codes += [s.getreply()[0], s.getreply()[0]]
out['codes'] = codes
)",
                        listener.port());
  EXPECT_EQ(out["codes"], nlohmann::json::parse("[250, 250, 250, 354, 250, 250]"));
  EXPECT_EQ(messages.load(), 1);
}

TEST(BounceListenerStore, AnswersTwoHundredFiftyOnlyOnceTheBounceIsInTheQueue) {
  test::TempDir dir;
  auto store = queue::open_rocksdb_store((dir.path() / "queue").string());
  test::write_file(dir.path() / "template.eml", "Subject: Hi\n\nHello\n");
  test::write_file(dir.path() / "recipients.csv", "email\nann@x.test\nbob@x.test\n");
  test::write_file(dir.path() / "campaign.toml",
                   "id = \"c1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"bounce.sender.test\"\n");
  auto id = submit_campaign(*store, load_campaign(dir.path() / "campaign.toml"), 1000).id;
  Config config;
  config.verp.secret = "listener-secret";
  BounceListener listener(*store, config, "127.0.0.1:0");
  listener.start();
  const std::string verp = Verp(config.verp.secret).address({id, 2}, "bounce.sender.test");

  auto out = run_client(
      "out['other'] = s.docmd('EHLO x') and s.docmd('MAIL FROM:<>')[0] and s.docmd('RCPT TO:<b+x@elsewhere.test>')[0]\n"
      "s.rset()\n"
      "msg = ('From: MAILER-DAEMON@relay.test\\r\\nTo: " + verp +
          "\\r\\nSubject: Undelivered Mail Returned to Sender\\r\\nMIME-Version: 1.0\\r\\n'\n"
          " 'Content-Type: multipart/report; report-type=delivery-status; boundary=B\\r\\n\\r\\n'\n"
          " '--B\\r\\nContent-Type: text/plain\\r\\n\\r\\nfailed\\r\\n--B\\r\\nContent-Type: message/delivery-status\\r\\n\\r\\n'\n"
          " 'Reporting-MTA: dns; relay.test\\r\\n\\r\\nFinal-Recipient: rfc822; bob@x.test\\r\\nAction: failed\\r\\n'\n"
          " 'Status: 5.1.1\\r\\nDiagnostic-Code: smtp; 550 5.1.1 <bob@x.test>: User unknown\\r\\n\\r\\n--B--\\r\\n')\n"
          "out['refused'] = s.sendmail('', ['" + verp + "'], msg.encode())\n"
          "s.quit()\n",
      listener.port());
  EXPECT_EQ(out["other"], 550) << "only the campaigns' VERP domains are accepted";
  EXPECT_TRUE(out["refused"].empty());
  // The 250 came after the durable write: the event is there now, without waiting.
  auto r = store->recipient({id, 2});
  ASSERT_TRUE(r && r->status.event);
  EXPECT_EQ(r->status.event->kind, queue::EventKind::late_bounce);
  EXPECT_EQ(r->status.event->reason, "userunknown");
  EXPECT_EQ(store->suppression("bob@x.test")->reason, "hard-bounce userunknown");
  EXPECT_FALSE(store->suppression("ann@x.test"));
  auto stats = listener.stats();
  EXPECT_EQ(stats.applied.matched, 1u);
  EXPECT_EQ(stats.applied.suppressed, 1u);
  listener.stop();
}

}  // namespace
}  // namespace kurier::engine
