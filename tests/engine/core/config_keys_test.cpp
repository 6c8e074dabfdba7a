// kurier.toml refuses what it does not know: unknown sections and keys, in fixed and
// nested tables, are InputErrors naming file, line and the nearest known name; and
// every kurier.toml shipped in the repository still loads.
#include <gtest/gtest.h>

#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "tests/common/process.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {

class ConfigKeys : public ::testing::Test {
 protected:
  InputError error_of(const std::string& toml) {
    return test::file_input_error(dir_.path() / "kurier.toml", toml, [](const auto& file) { load_config(file); });
  }
  test::TempDir dir_;
};

TEST_F(ConfigKeys, UnknownSectionSuggestsTheNearestOne) {
  auto e = error_of("[verp]\nsecret = \"s\"\n\n[qeue]\npath = \"q\"\n");
  EXPECT_EQ(e.line(), 4u);
  EXPECT_EQ(e.field(), "qeue");
  EXPECT_NE(std::string(e.what()).find("kurier.toml:4: field 'qeue': unknown section [qeue]; did you mean [queue]?"),
            std::string::npos)
      << e.what();
}

TEST_F(ConfigKeys, UnknownKeyWithAndWithoutSuggestion) {
  auto e = error_of("[dns]\nservers = []\ntimout_ms = 100\n");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "dns.timout_ms");
  EXPECT_NE(std::string(e.what()).find("unknown key 'timout_ms' in [dns]; did you mean 'timeout_ms'?"),
            std::string::npos)
      << e.what();

  e = error_of("[engine]\nworkers = 2\nthreads = 4\n");
  EXPECT_EQ(e.field(), "engine.threads");
  EXPECT_NE(std::string(e.what()).find("unknown key 'threads' in [engine]; known names: workers, window"),
            std::string::npos)
      << e.what();

  e = error_of("[http]\nlisten = \"127.0.0.1:1\"\ntokn = \"x\"\n");
  EXPECT_EQ(e.field(), "http.tokn");
  e = error_of("[bounce]\nsoft_limt = 3\n");
  EXPECT_NE(std::string(e.what()).find("did you mean 'soft_limit'?"), std::string::npos) << e.what();
  e = error_of("[mta_sts]\nenable = false\n");
  EXPECT_NE(std::string(e.what()).find("did you mean 'enabled'?"), std::string::npos) << e.what();
  e = error_of("[log]\nlevle = \"info\"\n");
  EXPECT_EQ(e.field(), "log.levle");
  e = error_of("[shaping]\nfiles = \"s.toml\"\n");
  EXPECT_EQ(e.field(), "shaping.files");
  e = error_of("[verp]\nsecrets = \"s\"\n");
  EXPECT_EQ(e.field(), "verp.secrets");
}

TEST_F(ConfigKeys, NestedTablesCheckTheirKeys) {
  auto e = error_of("[smtp]\nport = 25\n[smtp.timeouts]\nconnect_ms = 100\nrcpt_sm = 5\n");
  EXPECT_EQ(e.line(), 5u);
  EXPECT_EQ(e.field(), "smtp.timeouts.rcpt_sm");
  EXPECT_NE(std::string(e.what()).find("did you mean 'rcpt_ms'?"), std::string::npos) << e.what();

  e = error_of("[smtp.timeout]\nconnect_ms = 100\n");
  EXPECT_EQ(e.field(), "smtp.timeout");
  EXPECT_NE(std::string(e.what()).find("unknown section [smtp.timeout]; did you mean [smtp.timeouts]?"),
            std::string::npos)
      << e.what();

  e = error_of("[[dkim.key]]\ndomain = \"x.test\"\nselector = \"s\"\nkey = \"k.pem\"\n"
               "[[dkim.key]]\ndomain = \"y.test\"\nselecter = \"s\"\nkey = \"k.pem\"\n");
  EXPECT_EQ(e.line(), 7u);
  EXPECT_EQ(e.field(), "dkim.key.selecter");
  EXPECT_NE(std::string(e.what()).find("in [[dkim.key]]; did you mean 'selector'?"), std::string::npos) << e.what();

  e = error_of("[hygiene]\nrole = [\"x\"]\n");
  EXPECT_EQ(e.field(), "hygiene.role");
  EXPECT_NE(std::string(e.what()).find("did you mean 'roles'?"), std::string::npos) << e.what();

  e = error_of("[hygiene.policy]\ntypo_suspekt = \"off\"\n");
  EXPECT_EQ(e.field(), "hygiene.policy.typo_suspekt");
  EXPECT_NE(std::string(e.what()).find("did you mean 'typo_suspect'?"), std::string::npos) << e.what();
}

TEST_F(ConfigKeys, ASectionMustBeATable) {
  auto e = error_of("queue = \"var/q\"\n");
  EXPECT_EQ(e.field(), "queue");
  EXPECT_EQ(e.line(), 1u);
}

TEST(ShippedConfigs, ExampleKurierTomlLoads) {
  Config c = load_config(std::filesystem::path(KURIER_SOURCE_DIR) / "examples" / "kurier.toml");
  EXPECT_EQ(c.smtp.port, 2525);
  EXPECT_EQ(c.verp.secret, "demo-secret-change-me");
  EXPECT_EQ(c.shaping.defaults.connections, 10) << "examples/shaping.toml through [shaping] file";
}

}  // namespace
}  // namespace kurier::engine
