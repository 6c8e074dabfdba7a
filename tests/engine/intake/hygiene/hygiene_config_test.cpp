// The hygiene lists refuse unknown keys: a provider rules file ([[provider]] tables)
// with a misspelt key is an InputError naming file, line and the nearest known key.
#include <gtest/gtest.h>

#include "engine/core/input_error.h"
#include "engine/intake/hygiene/hygiene.h"
#include "tests/common/process.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {

InputError provider_file_error(const std::string& toml) {
  test::TempDir dir;
  return test::file_input_error(dir.path() / "providers.toml", toml, [](const auto& file) {
    HygieneOptions options;
    options.provider_syntax_file = file;
    Hygiene rules(options);
  });
}

TEST(HygieneProviderFile, UnknownKeysAreErrors) {
  auto e = provider_file_error("[[provider]]\nname = \"x\"\ndomains = [\"x.test\"]\nalowed = \"a-z\"\n");
  EXPECT_EQ(e.line(), 4u);
  EXPECT_EQ(e.field(), "provider.alowed");
  EXPECT_NE(std::string(e.what()).find("in [[provider]]; did you mean 'allowed'?"), std::string::npos) << e.what();

  e = provider_file_error("[[providers]]\nname = \"x\"\n");
  EXPECT_EQ(e.field(), "providers");
  EXPECT_NE(std::string(e.what()).find("unknown section [providers]; did you mean [provider]?"), std::string::npos)
      << e.what();
}

}  // namespace
}  // namespace kurier::engine
