// Campaign intake into a real RocksDB queue: what is queued, what is suppressed,
// resubmission, and that bad input leaves nothing behind.
#include <gtest/gtest.h>

#include "engine/intake/campaign.h"
#include "engine/core/input_error.h"
#include "queue/store.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {
namespace fs = std::filesystem;

class CampaignIntake : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = queue::open_rocksdb_store((dir_.path() / "queue").string());
    test::write_file(dir_.path() / "template.eml", "Subject: Hi {{name}}\n\nHello {{name}}\n");
    test::write_file(dir_.path() / "campaign.toml",
                     "id = \"c1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                     "recipients = \"recipients.csv\"\n[verp]\ndomain = \"Bounce.Sender.test\"\n");
  }
  CampaignSpec spec() { return load_campaign(dir_.path() / "campaign.toml"); }

  test::TempDir dir_;
  std::unique_ptr<queue::Store> store_;
};

TEST_F(CampaignIntake, QueuesRecipientsWithFieldsAndSuppressesDuplicatesAndListedAddresses) {
  store_->suppress({"blocked@x.test", "complaint", 1});
  test::write_file(dir_.path() / "recipients.csv",
                   "email,name\nanna@X.test,Anna\nben@x.test,\"Ben, Jr.\"\nANNA@x.test,Dup\nblocked@x.test,B\n");
  IntakeResult r = submit_campaign(*store_, spec(), 1000);
  EXPECT_FALSE(r.resumed);
  EXPECT_EQ(r.rows, 4u);
  EXPECT_EQ(r.queued, 2u);
  EXPECT_EQ(r.suppressed, 2u);
  EXPECT_EQ(r.suppressed_by_reason["duplicate"], 1u);
  EXPECT_EQ(r.suppressed_by_reason["suppressed"], 1u);

  auto campaign = store_->campaign(r.id);
  ASSERT_TRUE(campaign);
  EXPECT_EQ(campaign->name, "c1");
  EXPECT_EQ(campaign->verp_domain, "bounce.sender.test");
  EXPECT_EQ(campaign->template_text, "Subject: Hi {{name}}\n\nHello {{name}}\n");
  EXPECT_EQ(campaign->fields, (std::vector<std::string>{"email", "name"}));
  EXPECT_EQ(campaign->recipient_count, 4u);

  std::vector<queue::Recipient> all;
  store_->for_each_recipient(r.id, [&](const queue::Recipient& rec) {
    all.push_back(rec);
    return true;
  });
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].address, "anna@x.test") << "the domain is lower-cased";
  EXPECT_EQ(all[1].fields[1], "Ben, Jr.");
  EXPECT_EQ(all[1].status.state, queue::State::queued);
  EXPECT_EQ(all[1].status.next_attempt_ms, 1000);
  EXPECT_EQ(all[2].status.state, queue::State::suppressed);
  EXPECT_EQ(all[2].status.reason, "duplicate");
  EXPECT_EQ(all[2].address, "ANNA@x.test") << "never 'corrected'";
  EXPECT_EQ(all[3].status.state, queue::State::suppressed);
  EXPECT_EQ(all[3].status.reason, "suppressed: complaint");

  queue::ScheduleCursor cursor;
  auto due = store_->due(1000, 10, cursor);
  EXPECT_EQ(due.size(), 2u) << "suppressed recipients are never scheduled";
}

// Intake reads a suppression list of up to 100,000 entries into memory and looks a
// longer one up address by address (engine/intake/campaign.cpp): both must give the same
// verdicts, case-insensitively.
TEST_F(CampaignIntake, LongSuppressionListIsHonouredAddressByAddress) {
  std::vector<queue::Suppression> entries;
  for (int i = 0; i < 100'001; ++i) entries.push_back({"user" + std::to_string(i) + "@x.test", "import", 1});
  entries.push_back({"blocked@x.test", "complaint", 1});
  store_->suppress_all(entries);
  test::write_file(dir_.path() / "recipients.csv",
                   "email,name\nanna@x.test,Anna\nBlocked@X.test,B\nuser100000@x.test,U\nuser100001@x.test,V\n");
  IntakeResult r = submit_campaign(*store_, spec(), 1000);
  EXPECT_EQ(r.queued, 2u);
  EXPECT_EQ(r.suppressed_by_reason["suppressed"], 2u);
  std::vector<std::string> states;
  store_->for_each_recipient(r.id, [&](const queue::Recipient& rec) {
    states.push_back(rec.status.state == queue::State::suppressed ? rec.status.reason : "queued");
    return true;
  });
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "suppressed: complaint", "suppressed: import", "queued"}));
}

TEST_F(CampaignIntake, SameCampaignAgainResumesDifferentContentIsRefused) {
  test::write_file(dir_.path() / "recipients.csv", "email,name\na@x.test,A\n");
  auto first = submit_campaign(*store_, spec(), 1);
  auto again = submit_campaign(*store_, spec(), 2);
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.id, first.id);
  test::write_file(dir_.path() / "recipients.csv", "email,name\na@x.test,A\nb@x.test,B\n");
  try {
    submit_campaign(*store_, spec(), 3);
    FAIL() << "accepted a different campaign under the same id";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "id");
  }
  EXPECT_EQ(store_->counts(first.id).total(), 1u);
}

TEST_F(CampaignIntake, BadRowAbortsTheWholeCampaign) {
  std::string csv = "email,name\n";
  for (int i = 0; i < 5000; ++i) csv += "user" + std::to_string(i) + "@x.test,N\n";
  csv += "user@x.test,\"Evil\r\nBcc: all@x.test\"\n";
  test::write_file(dir_.path() / "recipients.csv", csv);
  try {
    submit_campaign(*store_, spec(), 1);
    FAIL() << "header injection accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.line(), 5002u);
    EXPECT_EQ(e.field(), "name");
  }
  EXPECT_TRUE(store_->campaigns().empty());
  EXPECT_FALSE(store_->find_campaign("c1"));
  queue::ScheduleCursor cursor;
  EXPECT_TRUE(store_->due(10, 10, cursor).empty()) << "nothing of the aborted campaign is scheduled";
  // The id is free again once the input is fixed.
  test::write_file(dir_.path() / "recipients.csv", "email,name\na@x.test,A\n");
  EXPECT_NO_THROW(submit_campaign(*store_, spec(), 1));
}

TEST_F(CampaignIntake, UnknownTemplateFieldNamesTemplateFileAndLine) {
  test::write_file(dir_.path() / "template.eml", "Subject: Hi\n\nHello {{first_name}}\n");
  test::write_file(dir_.path() / "recipients.csv", "email,name\na@x.test,A\n");
  try {
    submit_campaign(*store_, spec(), 1);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(e.file().find("template.eml"), std::string::npos);
    EXPECT_EQ(e.line(), 3u);
    EXPECT_EQ(e.field(), "first_name");
  }
}

TEST_F(CampaignIntake, MissingEmailColumnAndMissingVerpDomainAreInputErrors) {
  test::write_file(dir_.path() / "recipients.csv", "mail,name\na@x.test,A\n");
  EXPECT_THROW(submit_campaign(*store_, spec(), 1), InputError);
  test::write_file(dir_.path() / "campaign.toml",
                   "id = \"c1\"\nfrom = \"a@b.test\"\ntemplate = \"template.eml\"\nrecipients = \"recipients.csv\"\n");
  try {
    load_campaign(dir_.path() / "campaign.toml");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "verp.domain");
  }
}

}  // namespace
}  // namespace kurier::engine
