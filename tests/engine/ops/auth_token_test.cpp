// The daemon's API token (engine/ops/auth_token.h): generated once into the queue
// directory with mode 0600, read back by the client, overridden by [http] token, and
// compared exactly. Test thread only.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "engine/ops/auth_token.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

class AuthToken : public ::testing::Test {
 protected:
  AuthToken() { config_.queue.path = dir_.path() / "queue"; }
  test::TempDir dir_;
  Config config_;
};

TEST_F(AuthToken, GeneratedOnceIntoAPrivateFileAndReadBack) {
  EXPECT_EQ(read_token(config_), "");
  const std::string token = ensure_token(config_);
  EXPECT_EQ(token.size(), 64u);
  EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
  EXPECT_EQ(token_file(config_), config_.queue.path / "http.token");
  struct stat st {};
  ASSERT_EQ(::stat(token_file(config_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(read_token(config_), token);
  EXPECT_EQ(ensure_token(config_), token) << "a second start keeps the token";
}

TEST_F(AuthToken, ConfiguredTokenWinsAndWritesNothing) {
  config_.http.token = "configured";
  EXPECT_EQ(read_token(config_), "configured");
  EXPECT_EQ(ensure_token(config_), "configured");
  EXPECT_FALSE(std::filesystem::exists(token_file(config_)));
}

TEST_F(AuthToken, StoredTokenIsTrimmed) {
  test::write_file(token_file(config_), "abc123 \r\n");
  EXPECT_EQ(read_token(config_), "abc123");
}

TEST(TokenMatches, OnlyTheExactBearerHeader) {
  EXPECT_TRUE(token_matches("Bearer secret", "secret"));
  EXPECT_FALSE(token_matches("Bearer secreT", "secret"));
  EXPECT_FALSE(token_matches("Bearer secret2", "secret"));
  EXPECT_FALSE(token_matches("bearer secret", "secret"));
  EXPECT_FALSE(token_matches("secret", "secret"));
  EXPECT_FALSE(token_matches("Bearer ", "")) << "an empty token matches nothing";
}

}  // namespace
}  // namespace kurier::engine
