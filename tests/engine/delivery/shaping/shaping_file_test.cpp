// shaping.toml refuses what it does not know: unknown sections and keys, also inside
// [provider.NAME], [domain."d"] and [[...on_reply]], name file, line and the nearest
// known name; the shaping files shipped in the repository still load.
#include <gtest/gtest.h>

#include "engine/core/input_error.h"
#include "engine/delivery/shaping/shaping.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {

InputError shaping_error(const std::string& text) {
  return test::input_error_of([&] { parse_shaping(text, "shaping.toml"); }, text);
}

using test::says;

TEST(ShapingFileKeys, UnknownSectionSuggestsTheNearestOne) {
  auto e = shaping_error("[default]\nconnections = 2\n[[throtle]]\npattern = 'x'\n");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "throtle");
  EXPECT_TRUE(says(e, "shaping.toml:3: field 'throtle': unknown section [throtle]; did you mean [throttle]?"))
      << e.what();

  e = shaping_error("[limits]\nconnections = 2\n");
  EXPECT_TRUE(says(e, "unknown section [limits]; known names: default, provider, domain, throttle")) << e.what();
}

TEST(ShapingFileKeys, UnknownKeyWithAndWithoutSuggestion) {
  auto e = shaping_error("[default]\nconnections = 2\nmax_ages = \"1d\"\n");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "default.max_ages");
  EXPECT_TRUE(says(e, "unknown key 'max_ages' in [default]; did you mean 'max_age'?")) << e.what();

  e = shaping_error("[default]\nburst = 5\n");
  EXPECT_EQ(e.field(), "default.burst");
  EXPECT_TRUE(says(e, "unknown key 'burst' in [default]; known names: connections,")) << e.what();
}

TEST(ShapingFileKeys, DynamicTablesCheckTheirKeys) {
  auto e = shaping_error("[provider.google]\nmatch_domain = [\"gmail.com\"]\n");
  EXPECT_EQ(e.field(), "provider.google.match_domain");
  EXPECT_TRUE(says(e, "in [provider.google]; did you mean 'match_domains'?")) << e.what();

  e = shaping_error("[domain.\"example.org\"]\nconnection = 2\n");
  EXPECT_EQ(e.field(), "domain.example.org.connection");
  EXPECT_TRUE(says(e, "did you mean 'connections'?")) << e.what();

  e = shaping_error("[provider.x]\nmatch_mx = [\"*.x.test\"]\n[[provider.x.on_reply]]\npattern = 'busy'\nactoin = \"slow\"\n");
  EXPECT_EQ(e.line(), 5u);
  EXPECT_EQ(e.field(), "provider.x.on_reply.actoin");
  EXPECT_TRUE(says(e, "in [[provider.x.on_reply]]; did you mean 'action'?")) << e.what();

  e = shaping_error("[[throttle]]\npattern = 'busy'\nduraton = \"5m\"\n");
  EXPECT_EQ(e.field(), "throttle.duraton");
  EXPECT_TRUE(says(e, "in [[throttle]]; did you mean 'duration'?")) << e.what();
}

TEST(ShapingFileKeys, ShippedShapingFilesLoad) {
  const std::filesystem::path source(KURIER_SOURCE_DIR);
  ShapingRules data = load_shaping(source / "data" / "shaping.toml");
  EXPECT_FALSE(data.providers.empty());
  ShapingRules example = load_shaping(source / "examples" / "shaping.toml");
  EXPECT_EQ(example.defaults.connections, 10);
}

}  // namespace
}  // namespace kurier::engine
