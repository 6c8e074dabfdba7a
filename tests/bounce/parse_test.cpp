// The bounce parser on hand-written messages, one per style: RFC 3464 DSNs (failed,
// delayed, delivered), non-standard NDRs (qmail, Exim, Sendmail, Exchange, Gmail,
// Yahoo, OpenSMTPD, Amazon SES via SNS), ARF complaints, RFC 3834 auto-replies,
// human replies; transfer encodings, nesting, returned headers and VERP candidates.
#include <gtest/gtest.h>

#include <string>

#include "bounce/bounce.h"

namespace kurier::bounce {
namespace {

const RecipientReport& only(const Message& m) {
  EXPECT_EQ(m.recipients.size(), 1U);
  static const RecipientReport kNone;
  return m.recipients.empty() ? kNone : m.recipients.front();
}

// `m` is of `kind` and reports one recipient, `recipient`, for the reason `reason`.
void expect_one(const Message& m, Kind kind, const std::string& recipient, const std::string& reason) {
  EXPECT_EQ(m.kind, kind);
  EXPECT_EQ(only(m).recipient, recipient);
  EXPECT_EQ(only(m).verdict.reason, reason);
}

bool has_candidate(const Message& m, const std::string& address) {
  for (const auto& c : m.verp_candidates)
    if (c == address) return true;
  return false;
}

constexpr const char* kVerp = "b+abc123@bounce.example.com";

TEST(ParseDsn, PostfixMultipartReport) {
  const Message m = parse(R"(Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: b+abc123@bounce.example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

<ann@example.org>: host mx.example.org[192.0.2.5] said: 550 5.1.1 <ann@example.org>:
    Recipient address rejected: User unknown in local recipient table

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; ann@example.org
Original-Recipient: rfc822;ann@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 550 5.1.1 <ann@example.org>: Recipient address rejected:
    User unknown in local recipient table

Final-Recipient: rfc822; bob@example.org
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

--B1
Content-Type: message/rfc822

Return-Path: <b+abc123@bounce.example.com>
From: News <news@example.com>
To: ann@example.org
Message-ID: <m1@example.com>
Subject: Spring sale

Hello
--B1--
)");
  EXPECT_EQ(m.kind, Kind::bounce);
  ASSERT_EQ(m.recipients.size(), 2U);
  const RecipientReport& ann = m.recipients[0];
  EXPECT_EQ(ann.recipient, "ann@example.org");
  EXPECT_EQ(ann.status, "5.1.1");
  EXPECT_EQ(ann.action, "failed");
  EXPECT_EQ(ann.remote_mta, "mx.example.org");
  EXPECT_EQ(ann.reply, "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown in local recipient table");
  EXPECT_EQ(ann.verdict.reason, "userunknown");
  EXPECT_TRUE(ann.verdict.hard);
  EXPECT_EQ(m.recipients[1].recipient, "bob@example.org");
  EXPECT_EQ(m.recipients[1].verdict.reason, "mailboxfull");
  EXPECT_FALSE(m.recipients[1].verdict.hard);
  EXPECT_EQ(m.original_message_id, "m1@example.com");
  EXPECT_TRUE(has_candidate(m, kVerp));
  EXPECT_TRUE(has_candidate(m, "ann@example.org"));
}

TEST(ParseDsn, DelayedAndDeliveredActions) {
  const char* kTemplate = R"(From: Mail Delivery Subsystem <mailer-daemon@example.net>
To: sender@example.com
Subject: Delivery Status Notification
Content-Type: multipart/report; report-type=delivery-status; boundary=X

--X
Content-Type: text/plain

See below.
--X
Content-Type: message/delivery-status

Reporting-MTA: dns; example.net

Final-Recipient: rfc822; carol@example.org
Action: ACTION
Status: STATUS
--X--
)";
  auto with = [&](const std::string& action, const std::string& status) {
    std::string text = kTemplate;
    text.replace(text.find("ACTION"), 6, action);
    text.replace(text.find("STATUS"), 6, status);
    return parse(text);
  };
  const Message delayed = with("delayed", "4.4.7");
  EXPECT_EQ(delayed.kind, Kind::delay);
  EXPECT_EQ(only(delayed).action, "delayed");
  EXPECT_EQ(only(delayed).verdict.reason, "expired");
  const Message delivered = with("delivered", "2.0.0");
  EXPECT_EQ(delivered.kind, Kind::delivered);
  EXPECT_EQ(only(delivered).verdict.reason, "delivered");
  // A DSN gave up on a temporary status: still a bounce (Postfix after maximal_queue_lifetime).
  const Message gave_up = with("failed", "4.4.1");
  EXPECT_EQ(gave_up.kind, Kind::bounce);
}

TEST(ParseDsn, Base64EncodedDeliveryStatusAndNestedMultipart) {
  // "Final-Recipient: rfc822; dave@example.org\nAction: failed\nStatus: 5.1.1\n" in base64,
  // inside a multipart/mixed that wraps the report.
  const Message m = parse(R"(From: postmaster@example.net
To: b+abc123@bounce.example.com
Subject: Delivery failure
Content-Type: multipart/mixed; boundary=OUTER

--OUTER
Content-Type: multipart/report; report-type=delivery-status; boundary=INNER

--INNER
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Die Nachricht konnte nicht zugestellt werden: Benutzer unbekannt =E2=80=93 sorry.
--INNER
Content-Type: message/delivery-status
Content-Transfer-Encoding: base64

UmVwb3J0aW5nLU1UQTogZG5zOyBleGFtcGxlLm5ldAoKRmluYWwtUmVjaXBpZW50OiByZmM4MjI7
IGRhdmVAZXhhbXBsZS5vcmcKQWN0aW9uOiBmYWlsZWQKU3RhdHVzOiA1LjEuMQo=
--INNER
Content-Type: text/rfc822-headers

Return-Path: <b+zzz999@bounce.example.com>
To: dave@example.org
Message-ID: <orig-7@example.com>
--INNER--
--OUTER--
)");
  EXPECT_EQ(m.kind, Kind::bounce);
  EXPECT_EQ(only(m).recipient, "dave@example.org");
  EXPECT_EQ(only(m).status, "5.1.1");
  EXPECT_EQ(only(m).verdict.reason, "userunknown");
  EXPECT_EQ(m.original_message_id, "orig-7@example.com");
  EXPECT_TRUE(has_candidate(m, "b+zzz999@bounce.example.com"));
}

TEST(ParseDsn, RejectionAtEndOfDataIsFilteredNotUnknownUser) {
  const Message m = parse(R"(From: MAILER-DAEMON@example.net
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary=B

--B
Content-Type: text/plain

<erin@example.org>: host mx.example.org[192.0.2.9] said: 550 User unknown (in
    reply to end of DATA command)
--B
Content-Type: message/delivery-status

Final-Recipient: rfc822; erin@example.org
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 550 User unknown
--B--
)");
  EXPECT_EQ(only(m).verdict.reason, "filtered");
  EXPECT_FALSE(only(m).verdict.hard);
}

TEST(ParseNdr, Qmail) {
  const Message m = parse(R"(From: MAILER-DAEMON@mail.example.net
To: b+abc123@bounce.example.com
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<frank@example.org>:
192.0.2.7 does not like recipient.
Remote host said: 550 5.1.1 <frank@example.org>... No such user
Giving up on 192.0.2.7.

--- Below this line is a copy of the message.

Return-Path: <b+abc123@bounce.example.com>
To: frank@example.org
Subject: hi

body
)");
  EXPECT_EQ(m.kind, Kind::bounce);
  EXPECT_EQ(only(m).recipient, "frank@example.org");
  EXPECT_EQ(only(m).status, "5.1.1");
  EXPECT_EQ(only(m).verdict.reason, "userunknown");
  EXPECT_NE(only(m).reply.find("550 5.1.1"), std::string::npos);
  EXPECT_TRUE(has_candidate(m, kVerp));
}

TEST(ParseNdr, EximWithSeveralRecipients) {
  const Message m = parse(R"(From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: b+abc123@bounce.example.com
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gina@example.org
    host mx.example.org [192.0.2.3]
    SMTP error from remote mail server after RCPT TO:<gina@example.org>:
    550 5.2.1 The email account that you tried to reach is disabled.
  hank@example.org
    host mx.example.org [192.0.2.3]
    SMTP error from remote mail server after RCPT TO:<hank@example.org>:
    552 5.2.2 Mailbox quota exceeded

------ This is a copy of the message, including all the headers. ------

Return-path: <b+abc123@bounce.example.com>
To: gina@example.org, hank@example.org
Subject: hi
)");
  EXPECT_EQ(m.kind, Kind::bounce);  // Auto-Submitted on an NDR does not make it an auto-reply
  ASSERT_EQ(m.recipients.size(), 2U);
  EXPECT_EQ(m.recipients[0].recipient, "gina@example.org");
  EXPECT_EQ(m.recipients[0].verdict.reason, "suspend");
  EXPECT_EQ(m.recipients[1].recipient, "hank@example.org");
  EXPECT_EQ(m.recipients[1].status, "5.2.2");
  EXPECT_EQ(m.recipients[1].verdict.reason, "mailboxfull");
}

TEST(ParseNdr, SendmailPermanentFatalErrors) {
  const Message m = parse(R"(From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>
Subject: Returned mail: see transcript for details

The original message was received at Mon, 1 Jan 2024 10:00:00 GMT
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<ivy@example.org>
    (reason: 550 5.7.1 <ivy@example.org>... Relaying denied)

   ----- Transcript of session follows -----
... while talking to mx.example.org.:
>>> RCPT To:<ivy@example.org>
<<< 550 5.7.1 <ivy@example.org>... Relaying denied
)");
  expect_one(m, Kind::bounce, "ivy@example.org", "norelaying");
}

TEST(ParseNdr, ExchangeOffice365) {
  const Message m = parse(R"(From: Microsoft Outlook <postmaster@contoso.example>
To: b+abc123@bounce.example.com
Subject: Undeliverable: Spring sale
Content-Type: text/plain; charset=utf-8

Delivery has failed to these recipients or groups:

jack@contoso.example
The email address you entered couldn't be found. Please check the recipient's email address and try to resend the message.

Diagnostic information for administrators:

Generating server: AM0PR01MB1234.eurprd01.prod.exchangelabs.com

jack@contoso.example
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'
)");
  EXPECT_EQ(m.kind, Kind::bounce);
  EXPECT_EQ(only(m).recipient, "jack@contoso.example");
  EXPECT_EQ(only(m).status, "5.1.10");
  EXPECT_EQ(only(m).verdict.reason, "userunknown");
  EXPECT_TRUE(only(m).verdict.hard);
}

TEST(ParseNdr, GmailAddressNotFound) {
  const Message m = parse(R"(From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: b+abc123@bounce.example.com
Subject: Delivery Status Notification (Failure)
Content-Type: text/plain; charset=UTF-8

** Address not found **

Your message wasn't delivered to kim@example.org because the address couldn't be found, or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.
)");
  expect_one(m, Kind::bounce, "kim@example.org", "userunknown");
}

TEST(ParseNdr, YahooDeliveryError) {
  const Message m = parse(R"(From: MAILER-DAEMON@yahoo.com
Subject: Failure Notice

Sorry, we were unable to deliver your message to the following address.

<lee@yahoo.com>:
554: delivery error: dd This user doesn't have a yahoo.com account (lee@yahoo.com) [0] - mta1001.mail.gq1.yahoo.com
)");
  EXPECT_EQ(only(m).recipient, "lee@yahoo.com");
  EXPECT_EQ(only(m).verdict.reason, "userunknown");
}

TEST(ParseNdr, OpenSmtpdListAndDelay) {
  const Message m = parse(R"(From: Mailer Daemon <MAILER-DAEMON@mx.example.net>
Subject: Delivery status notification: delayed

    Hi!

    This is the MAILER-DAEMON, please DO NOT REPLY to this email.

    An error has occurred while attempting to deliver a message for
    the following list of recipients:

mia@example.org: 421 4.7.0 Try again later, closing connection: too many connections

    Below is a copy of the original message:
)");
  EXPECT_EQ(m.kind, Kind::delay);
  EXPECT_EQ(only(m).recipient, "mia@example.org");
  EXPECT_EQ(only(m).action, "delayed");
  EXPECT_EQ(only(m).verdict.reason, "toomanyconn");
}

TEST(ParseNdr, AmazonSesJsonThroughSns) {
  const Message m = parse(R"(From: SES <no-reply@sns.amazonaws.com>
Subject: AWS Notification Message
Content-Type: text/plain; charset=UTF-8

{
  "Type" : "Notification",
  "Message" : "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bouncedRecipients\":[{\"emailAddress\":\"ned@example.org\",\"action\":\"failed\",\"status\":\"5.1.1\",\"diagnosticCode\":\"smtp; 550 5.1.1 user unknown\"}]},\"mail\":{\"source\":\"b+abc123@bounce.example.com\",\"messageId\":\"0101-xyz\"}}"
}
)");
  expect_one(m, Kind::bounce, "ned@example.org", "userunknown");
  EXPECT_TRUE(has_candidate(m, kVerp));
}

TEST(ParseFeedback, ArfWithOriginalRcptTo) {
  const Message m = parse(R"(From: feedbackloop@isp.example
To: fbl@example.com
Subject: Abuse Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report.
--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <b+abc123@bounce.example.com>
Original-Rcpt-To: <olga@isp.example>

--F
Content-Type: message/rfc822

Return-Path: <b+abc123@bounce.example.com>
From: news@example.com
To: olga@isp.example
Subject: Spring sale
Message-ID: <m9@example.com>

Hello
--F--
)");
  EXPECT_EQ(m.kind, Kind::feedback);
  EXPECT_EQ(m.feedback_type, "abuse");
  EXPECT_EQ(only(m).recipient, "olga@isp.example");
  EXPECT_EQ(only(m).verdict.reason, "feedback");
  EXPECT_FALSE(only(m).verdict.hard);
  EXPECT_TRUE(has_candidate(m, kVerp));
  EXPECT_EQ(m.original_message_id, "m9@example.com");
}

TEST(ParseFeedback, RedactedRecipientFallsBackToReturnedTo) {
  const Message m = parse(R"(From: fbl@isp.example
Subject: FBL
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: message/feedback-report

Feedback-Type: opt-out
--F
Content-Type: text/rfc822-headers

Return-Path: <b+abc123@bounce.example.com>
To: paul@isp.example
--F--
)");
  EXPECT_EQ(m.kind, Kind::feedback);
  EXPECT_EQ(m.feedback_type, "opt-out");
  EXPECT_EQ(only(m).recipient, "paul@isp.example");
}

TEST(ParseAutoreply, Rfc3834Header) {
  const Message m = parse(R"(From: Quinn <quinn@example.org>
To: b+abc123@bounce.example.com
Subject: Re: Spring sale
Auto-Submitted: auto-replied

I am away until Monday.
)");
  expect_one(m, Kind::autoreply, "quinn@example.org", "vacation");
  EXPECT_TRUE(has_candidate(m, kVerp));
}

TEST(ParseAutoreply, VendorHeadersAndSubjectsInSeveralLanguages) {
  auto kind_of = [](const std::string& headers) {
    return parse("From: rita@example.org\nTo: b+abc123@bounce.example.com\n" + headers + "\nText.\n").kind;
  };
  EXPECT_EQ(kind_of("Subject: hello\nX-Autoreply: yes\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: hello\nX-Autorespond: hello\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: hello\nPrecedence: auto_reply\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: Out of Office: Spring sale\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: Automatic reply: Spring sale\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: Abwesenheitsnotiz: Frühjahrsangebot\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: Automatische Antwort: Angebot\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: =?utf-8?q?R=C3=A9ponse_automatique=3A_Offre?=\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: =?utf-8?q?Respuesta_autom=C3=A1tica?=\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: Risposta automatica: offerta\n"), Kind::autoreply);
  EXPECT_EQ(kind_of("Subject: Afwezig: aanbieding\n"), Kind::autoreply);
}

TEST(ParseReply, HumanReplyAndUnknown) {
  const Message reply = parse(R"(From: Sam <sam@example.org>
To: b+abc123@bounce.example.com
Subject: Re: Spring sale
In-Reply-To: <m1@example.com>

Please take me off your list... actually, what does the blue one cost?
)");
  EXPECT_EQ(reply.kind, Kind::reply);
  EXPECT_TRUE(reply.recipients.empty());
  EXPECT_TRUE(has_candidate(reply, kVerp));

  const Message other = parse("From: x@example.org\nSubject: Cheap watches\n\nBuy now.\n");
  EXPECT_EQ(other.kind, Kind::unknown);
  EXPECT_TRUE(other.recipients.empty());
}

TEST(ParseGarbage, NeverThrowsAndSaysUnknown) {
  EXPECT_EQ(parse("").kind, Kind::unknown);
  EXPECT_EQ(parse("\x01\x02\xff not a message").kind, Kind::unknown);
  std::string deep = "Content-Type: multipart/mixed; boundary=a0\n\n";
  for (int i = 0; i < 100; ++i)
    deep += "--a" + std::to_string(i) + "\nContent-Type: multipart/mixed; boundary=a" + std::to_string(i + 1) + "\n\n";
  EXPECT_NO_THROW((void)parse(deep));
}

}  // namespace
}  // namespace kurier::bounce
