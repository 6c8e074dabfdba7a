// Reply classification: enhanced code first, text refining it, basic code last.
#include <gtest/gtest.h>

#include "bounce/bounce.h"
#include "engine/delivery/classify.h"

namespace kurier::engine {
namespace {

struct Case {
  int code;
  const char* enhanced;
  const char* text;
  Disposition disposition;
  const char* category;
  const char* reason;
};

class ClassifyReply : public ::testing::TestWithParam<Case> {};

TEST_P(ClassifyReply, GivesDispositionCategoryAndReason) {
  const Case& c = GetParam();
  Classification got = classify_reply(c.code, c.enhanced, c.text);
  EXPECT_EQ(got.disposition, c.disposition) << c.code << " " << c.text;
  EXPECT_EQ(bounce::to_string(got.category), c.category) << c.code << " " << c.text;
  EXPECT_EQ(got.reason, c.reason) << c.code << " " << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    Replies, ClassifyReply,
    ::testing::Values(
        Case{250, "2.0.0", "Ok: queued as 4Xyz", Disposition::delivered, "", "delivered"},
        Case{550, "5.1.1", "<a@b.test>: Recipient address rejected: User unknown", Disposition::bounced, "hard",
             "userunknown"},
        Case{550, "", "No such user here", Disposition::bounced, "hard", "userunknown"},
        Case{552, "5.2.2", "Mailbox full", Disposition::bounced, "soft", "mailboxfull"},
        Case{452, "4.2.2", "Mailbox full, try later", Disposition::deferred, "soft", "mailboxfull"},
        Case{451, "4.7.1", "Recipient address rejected: Greylisted for 300 seconds", Disposition::deferred, "soft",
             "onhold"},
        Case{554, "5.7.1", "Service unavailable; Client host [1.2.3.4] blocked using zen.spamhaus.org",
             Disposition::bounced, "block", "blocked"},
        Case{554, "5.7.1", "Message rejected as spam", Disposition::bounced, "block", "spamdetected"},
        // A 5.1.1 that speaks of rate limits is not an unknown user.
        Case{550, "5.1.1", "Rate limit exceeded for this sender, try again later", Disposition::bounced, "soft",
             "speeding"},
        Case{421, "4.7.0", "Too many connections from your IP", Disposition::deferred, "soft", "toomanyconn"},
        Case{421, "", "Service not available", Disposition::deferred, "soft", "toomanyconn"},
        Case{550, "5.7.26", "Unauthenticated email is not accepted (DMARC policy)", Disposition::bounced, "block",
             "authfailure"},
        Case{552, "5.3.4", "Message size exceeds fixed limit", Disposition::bounced, "soft", "mesgtoobig"},
        Case{0, "", "connect: Connection refused", Disposition::deferred, "soft", "networkerror"},
        // Temporary failures are never hard, whatever the words.
        Case{450, "4.1.1", "User unknown (temporarily)", Disposition::deferred, "soft", "userunknown"},
        // RFC 3463 X.1.3: the destination address itself is invalid; it never becomes
        // deliverable, so it is suppressed like an unknown user (Sisimai agrees).
        Case{553, "5.1.3", "Bad recipient address syntax", Disposition::bounced, "hard", "userunknown"},
        Case{550, "", "Access denied", Disposition::bounced, "block", "rejected"}));

// The category the built-in rules give a reason (what classify_reply reports with it).
std::string category_for(std::string_view reason) { return bounce::Rules::builtin().verdict_for(reason).category; }

TEST(CategoryFor, KnowsHardBlockAndSoftReasons) {
  EXPECT_EQ(category_for("userunknown"), "hard");
  EXPECT_EQ(category_for("hostunknown"), "hard");
  EXPECT_EQ(category_for("notaccept"), "hard");
  EXPECT_EQ(category_for("blocked"), "block");
  EXPECT_EQ(category_for("policyviolation"), "block");
  EXPECT_EQ(category_for("mailboxfull"), "soft");
  EXPECT_EQ(category_for("expired"), "soft");
  EXPECT_EQ(category_for("undefined"), "other");
}

}  // namespace
}  // namespace kurier::engine
