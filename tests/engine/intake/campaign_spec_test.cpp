// campaign.toml refuses what it does not know: unknown keys and sections, also inside
// [verp], [dkim] and [[dkim]], name file, line and the nearest known name; the example
// campaign still loads.
#include <gtest/gtest.h>

#include "engine/core/input_error.h"
#include "engine/intake/campaign_spec.h"
#include "tests/common/process.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {

constexpr const char* kValid =
    "id = \"c1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"t.eml\"\nrecipients = \"r.csv\"\n";

class CampaignSpecKeys : public ::testing::Test {
 protected:
  InputError error_of(const std::string& toml) {
    return test::file_input_error(dir_.path() / "campaign.toml", toml, [](const auto& file) { load_campaign(file); });
  }
  test::TempDir dir_;
};

using test::says;

TEST_F(CampaignSpecKeys, UnknownTopLevelKeyAndSection) {
  auto e = error_of(std::string(kValid) + "subjet = \"Hi\"\n[verp]\ndomain = \"b.test\"\n");
  EXPECT_EQ(e.line(), 5u);
  EXPECT_EQ(e.field(), "subjet");
  EXPECT_TRUE(says(e, "campaign.toml:5: field 'subjet': unknown key 'subjet' at the top level; known names: id, from,"))
      << e.what();

  e = error_of(std::string(kValid) + "recipient = \"r.csv\"\n[verp]\ndomain = \"b.test\"\n");
  EXPECT_EQ(e.field(), "recipient");
  EXPECT_TRUE(says(e, "did you mean 'recipients'?")) << e.what();

  e = error_of(std::string(kValid) + "[verp]\ndomain = \"b.test\"\n[vrep]\ndomain = \"b.test\"\n");
  EXPECT_EQ(e.line(), 7u);
  EXPECT_TRUE(says(e, "unknown section [vrep]; did you mean [verp]?")) << e.what();
}

TEST_F(CampaignSpecKeys, SectionsCheckTheirKeys) {
  auto e = error_of(std::string(kValid) + "[verp]\ndomian = \"b.test\"\n");
  EXPECT_EQ(e.field(), "verp.domian");
  EXPECT_TRUE(says(e, "in [verp]; did you mean 'domain'?")) << e.what();

  e = error_of(std::string(kValid) + "[verp]\ndomain = \"b.test\"\n[dkim]\ndomain = \"sender.test\"\nselector = \"s\"\n"
                                     "key = \"k.pem\"\nalgorithm = \"rsa\"\n");
  EXPECT_EQ(e.line(), 11u);
  EXPECT_EQ(e.field(), "dkim.algorithm");
  EXPECT_TRUE(says(e, "unknown key 'algorithm' in [dkim]; known names: domain, selector, key")) << e.what();

  e = error_of(std::string(kValid) + "[verp]\ndomain = \"b.test\"\n[[dkim]]\ndomain = \"sender.test\"\nselector = \"s\"\n"
                                     "key = \"k.pem\"\n[[dkim]]\ndomain = \"sender.test\"\nselectr = \"e\"\nkey = \"e.pem\"\n");
  EXPECT_EQ(e.field(), "dkim.selectr");
  EXPECT_TRUE(says(e, "in [[dkim]]; did you mean 'selector'?")) << e.what();
}

TEST_F(CampaignSpecKeys, ValidFileStillLoads) {
  test::write_file(dir_.path() / "campaign.toml",
                   std::string(kValid) + "[verp]\ndomain = \"B.test\"\n[dkim]\ndomain = \"sender.test\"\n"
                                         "selector = \"s\"\nkey = \"k.pem\"\n");
  CampaignSpec spec = load_campaign(dir_.path() / "campaign.toml");
  EXPECT_EQ(spec.id, "c1");
  EXPECT_EQ(spec.verp_domain, "b.test");
  ASSERT_EQ(spec.dkim.size(), 1u);
  EXPECT_EQ(spec.dkim[0].key, dir_.path() / "k.pem");
}

TEST(ShippedCampaign, ExampleCampaignTomlLoads) {
  const auto dir = std::filesystem::path(KURIER_SOURCE_DIR) / "examples";
  CampaignSpec spec = load_campaign(dir / "campaign.toml");
  EXPECT_EQ(spec.id, "demo-newsletter");
  EXPECT_EQ(spec.recipients_path, dir / "recipients.csv");
}

}  // namespace
}  // namespace kurier::engine
