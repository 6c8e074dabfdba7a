// The data-driven classifier: enhanced code first, text refining it, reply code last;
// provider and non-English wording; the ops rules file and its error messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "bounce/bounce.h"

namespace kurier::bounce {
namespace {

namespace fs = std::filesystem;

struct Case {
  int code;
  const char* enhanced;
  const char* text;
  const char* reason;
  const char* category;
  bool hard;
};

class InlineReply : public ::testing::TestWithParam<Case> {};

TEST_P(InlineReply, GetsReasonCategoryAndHardFlag) {
  const Case& c = GetParam();
  const Diagnosis v = Rules::builtin().classify(c.code, c.enhanced, c.text);
  EXPECT_EQ(v.reason, c.reason) << c.code << " " << c.enhanced << " " << c.text;
  EXPECT_EQ(v.category, c.category) << c.text;
  EXPECT_EQ(v.hard, c.hard) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    Replies, InlineReply,
    ::testing::Values(
        Case{250, "2.0.0", "Ok: queued", "delivered", "other", false},
        // The enhanced code decides when the text adds nothing.
        Case{550, "5.1.1", "Requested action not taken", "userunknown", "hard", true},
        Case{550, "5.1.2", "Requested action not taken", "hostunknown", "hard", true},
        Case{550, "5.1.6", "Requested action not taken", "hasmoved", "hard", true},
        Case{552, "5.2.2", "Requested action not taken", "mailboxfull", "soft", false},
        Case{550, "5.7.25", "Requested action not taken", "requireptr", "block", false},
        Case{556, "5.1.10", "Requested action not taken", "notaccept", "hard", true},
        // ... the text refines or overrides it: a 5.1.1 about rate limits is no unknown user.
        Case{550, "5.1.1", "Rate limit exceeded for this sender, try again later", "speeding", "soft", false},
        Case{550, "5.7.1", "Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org", "blocked",
             "block", false},
        Case{550, "5.7.1", "Message rejected as spam by Content Filtering", "spamdetected", "block", false},
        Case{550, "5.7.1", "Our system has detected that this message is likely suspicious due to the very low "
                           "reputation of the sending IP address",
             "badreputation", "block", false},
        Case{550, "5.7.1", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
             "authfailure", "block", false},
        Case{554, "5.7.1", "<x@y>: Relay access denied", "norelaying", "block", false},
        // Provider wording.
        Case{550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking",
             "userunknown", "hard", true},
        Case{550, "5.2.1", "The email account that you tried to reach is disabled.", "suspend", "soft", false},
        Case{550, "5.5.0", "Requested action not taken: mailbox unavailable", "userunknown", "hard", true},
        Case{550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281) [DM3NAM.prod.outlook.com]",
             "userunknown", "hard", true},
        Case{550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "userunknown",
             "hard", true},
        Case{554, "", "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]", "userunknown",
             "hard", true},
        Case{552, "", "Quota exceeded (mailbox for user is full)", "mailboxfull", "soft", false},
        Case{452, "4.2.2", "Mailbox full", "mailboxfull", "soft", false},
        Case{421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user "
                           "complaints",
             "badreputation", "block", false},
        Case{552, "5.2.2", "Mailbox size limit exceeded", "mailboxfull", "soft", false},
        Case{552, "5.3.4", "Message size exceeds fixed maximum message size", "mesgtoobig", "soft", false},
        Case{550, "5.1.1", "User unknown; not listed in public Name & Address Book", "userunknown", "hard", true},
        Case{451, "4.7.1", "Greylisted, please try again in 300 seconds", "onhold", "soft", false},
        Case{450, "4.7.1", "Client host rejected: cannot find your hostname, [192.0.2.1]", "requireptr", "block",
             false},
        // German, French.
        Case{550, "", "Benutzer unbekannt", "userunknown", "hard", true},
        Case{552, "", "Postfach voll", "mailboxfull", "soft", false},
        Case{550, "5.1.1", "Adresse destinataire invalide. Invalid recipient.", "userunknown", "hard", true},
        // The multi-line prefixes of a folded reply do not hide the words.
        Case{550, "5.7.26", "550-5.7.26 This mail has been blocked because the sender is 550-5.7.26 unauthenticated.",
             "authfailure", "block", false},
        // An address that looks like a reason is data, not wording.
        Case{550, "5.7.1", "<mailbox-full@example.org>: Access denied", "rejected", "block", false},
        // Basic reply codes when nothing else speaks.
        Case{550, "", "Denied", "rejected", "block", false},
        Case{451, "", "Please come back", "systemerror", "soft", false},
        Case{421, "", "Service not available", "toomanyconn", "soft", false},
        Case{503, "", "Bad sequence of commands", "syntaxerror", "other", false},
        Case{599, "", "???", "undefined", "other", false}));

TEST(ClassifyStatus, PrefersTheServersCodeOverAClassOnlyStatus) {
  const Diagnosis v = Rules::builtin().classify_status("5.0.0", "smtp; 550 5.1.1 <a@b.example>... User Unknown");
  EXPECT_EQ(v.reason, "userunknown");
  EXPECT_TRUE(v.hard);
}

TEST(ClassifyStatus, UsesTheStatusWhenTheDiagnosticIsSilent) {
  EXPECT_EQ(Rules::builtin().classify_status("5.2.2", "").reason, "mailboxfull");
  EXPECT_EQ(Rules::builtin().classify_status("4.4.7", "").reason, "expired");
  EXPECT_EQ(Rules::builtin().classify_status("", "").reason, "undefined");
}

TEST(ClassifyStatus, TemporaryNotacceptIsNotHard) {
  EXPECT_TRUE(Rules::builtin().classify_status("5.1.10", "").hard);
  const Diagnosis temporary = Rules::builtin().classify_status("4.1.10", "");
  EXPECT_EQ(temporary.reason, "notaccept");
  EXPECT_FALSE(temporary.hard);
  EXPECT_EQ(temporary.category, "soft");
}

TEST(ClassifyStatus, PostfixConnectionTimeoutIsExpired) {
  const Diagnosis v = Rules::builtin().classify_status(
      "4.4.1", "X-Postfix; connect to mx.example.org[192.0.2.1]:25: Connection timed out");
  EXPECT_EQ(v.reason, "expired");
  EXPECT_FALSE(v.hard);
}

class RulesFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kurier-rules-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& text) {
    const fs::path path = dir_ / "extra.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string load_error(const std::string& text) {
    const fs::path path = write(text);
    try {
      (void)Rules::load(path);
    } catch (const RulesError& e) {
      EXPECT_EQ(e.file(), path.string());
      return e.what();
    }
    ADD_FAILURE() << "no error for:\n" << text;
    return {};
  }
  fs::path dir_;
};

TEST_F(RulesFile, ExtraPatternsComeFirstAndBuiltinsStillApply) {
  const Rules rules = Rules::load(write(R"(
[[pattern]]
reason = "blocked"
contains = ["acme-shield"]

[[pattern]]
reason = "suspend"
regex = ['account\s+#\d+\s+paused']
)"));
  EXPECT_EQ(rules.classify(550, "5.1.1", "User unknown (ACME-Shield policy 7)").reason, "blocked");
  EXPECT_EQ(rules.classify(550, "", "Account #42 paused by owner").reason, "suspend");
  EXPECT_EQ(rules.classify(550, "5.1.1", "User unknown").reason, "userunknown");
  // The built-in set is untouched by loading an extra file.
  EXPECT_EQ(Rules::builtin().classify(550, "5.1.1", "User unknown (ACME-Shield policy 7)").reason, "userunknown");
}

TEST_F(RulesFile, ExtraEntriesReplaceBuiltinCodesAndReasons) {
  const Rules rules = Rules::load(write(R"(
[reasons]
suspend = { category = "hard", hard = true }
[status]
"5.7.1" = "policyviolation"
[reply_code]
"550" = "userunknown"
)"));
  EXPECT_EQ(rules.classify(550, "5.7.1", "nope").reason, "policyviolation");
  EXPECT_EQ(rules.classify(550, "4.7.1", "nope").reason, "rejected");  // class-specific key only
  EXPECT_EQ(rules.classify(550, "", "nope").reason, "userunknown");
  EXPECT_TRUE(rules.classify(550, "5.2.1", "nope").hard);
}

TEST_F(RulesFile, ErrorsNameFileLineAndField) {
  struct BadFile {
    std::string file;     // the rules file
    std::string message;  // what its error must say
  };
  const BadFile cases[] = {
      {"[[pattern]]\nreason = \"nosuchreason\"\ncontains = [\"x\"]\n",
       ":2: field 'pattern[0].reason': unknown reason \"nosuchreason\""},
      {"[[pattern]]\nreason = \"blocked\"\nregex = ['(unclosed']\n", ":3: field 'pattern[0].regex': bad regex"},
      {"[[pattern]]\nreason = \"blocked\"\n", "field 'pattern[0]': needs `contains` or `regex`"},
      {"[status]\n\"5.x\" = \"blocked\"\n", ":2: field 'status.5.x'"},
      {"\n[reply_code]\n\"550\" = 7\n", ":3: field 'reply_code.550': must be a reason string"},
      {"[reasons]\nfoo = { category = \"fatal\" }\n", ":2: field 'reasons.foo.category'"},
      {"[patterns]\n", "field 'patterns': unknown section"},
      {"[[pattern]\n", ":1: "},  // TOML syntax error
  };
  for (const auto& c : cases) {
    const std::string e = load_error(c.file);
    EXPECT_NE(e.find(c.message), std::string::npos) << e;
  }
}

TEST_F(RulesFile, MissingFileIsAnError) {
  EXPECT_THROW((void)Rules::load(dir_ / "absent.toml"), RulesError);
}

TEST(BuiltinRules, ParseFromTheShippedDataFile) {
  // The compiled-in text is data/bounce-rules.toml; parsing the file itself must agree.
  std::ifstream in(fs::path(KURIER_SOURCE_DIR) / "data/bounce-rules.toml");
  ASSERT_TRUE(in);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Rules rules = Rules::parse_text(text, "data/bounce-rules.toml");
  EXPECT_EQ(rules.classify(550, "5.1.1", "x").reason, Rules::builtin().classify(550, "5.1.1", "x").reason);
  EXPECT_EQ(rules.verdict_for("hostunknown").category, "hard");
  EXPECT_EQ(rules.verdict_for("blocked").category, "block");
  EXPECT_EQ(rules.verdict_for("nonsense").category, "other");
}

}  // namespace
}  // namespace kurier::bounce
