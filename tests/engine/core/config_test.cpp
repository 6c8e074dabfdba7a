// kurier.toml / shaping.toml loading: values, defaults, and errors naming file, line, key.
#include <gtest/gtest.h>

#include "engine/core/config.h"
#include "engine/core/input_error.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

TEST(LoadConfig, ReadsEveryBlockAndResolvesPathsAgainstTheFile) {
  test::TempDir dir;
  test::write_file(dir.path() / "shaping.toml",
                   "[default]\nconnections = 3\nmessages_per_connection = 7\nretry = [\"1m\", \"2h\"]\nmax_age = \"2d\"\n");
  test::write_file(dir.path() / "kurier.toml",
                   "[queue]\npath = \"q\"\n[dns]\nservers = [\"127.0.0.1:5353\"]\ntimeout_ms = 700\n"
                   "[smtp]\nhelo = \"mta.test\"\nport = 2525\ntls = \"required\"\n[smtp.timeouts]\nconnect_ms = 1500\n"
                   "[shaping]\nfile = \"shaping.toml\"\n[verp]\nsecret = \"s3cret\"\n[engine]\nworkers = 2\nwindow = 500\n");
  Config c = load_config(dir.path() / "kurier.toml");
  EXPECT_EQ(c.queue.path, dir.path() / "q");
  ASSERT_EQ(c.dns.servers.size(), 1u);
  EXPECT_EQ(c.dns.servers[0], "127.0.0.1:5353");
  EXPECT_EQ(c.dns.timeout.count(), 700);
  EXPECT_EQ(c.smtp.helo, "mta.test");
  EXPECT_EQ(c.smtp.port, 2525);
  EXPECT_EQ(c.smtp.tls, smtp::TlsPolicy::required);
  EXPECT_EQ(c.smtp.timeouts.connect.count(), 1500);
  EXPECT_EQ(c.smtp.timeouts.data_term.count(), 600000) << "RFC 5321 default kept";
  EXPECT_EQ(c.verp.secret, "s3cret");
  EXPECT_EQ(c.engine.workers, 2);
  EXPECT_EQ(c.engine.window, 500u);
  EXPECT_EQ(c.shaping.defaults.connections, 3);
  EXPECT_EQ(c.shaping.defaults.messages_per_connection, 7);
  ASSERT_EQ(c.shaping.defaults.retry.size(), 2u);
  EXPECT_EQ(c.shaping.defaults.retry[1], std::chrono::hours(2));
  EXPECT_EQ(c.shaping.defaults.max_age, std::chrono::hours(48));
}

TEST(LoadConfig, ErrorsNameFileLineAndKey) {
  test::TempDir dir;
  auto path = dir.path() / "kurier.toml";
  test::write_file(path, "[smtp]\nhelo = \"x\"\nport = \"twenty-five\"\n");
  try {
    load_config(path);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_EQ(e.field(), "smtp.port");
    EXPECT_NE(std::string(e.what()).find("kurier.toml:3: field 'smtp.port'"), std::string::npos) << e.what();
  }
  test::write_file(path, "[smtp\nport = 1\n");
  EXPECT_THROW(load_config(path), InputError);
  test::write_file(path, "[shaping]\nfile = \"nope.toml\"\n");
  EXPECT_THROW(load_config(path), InputError);
  EXPECT_THROW(load_config(dir.path() / "missing.toml"), InputError);
}

TEST(ParseDuration, KnowsUnits) {
  EXPECT_EQ(parse_duration("30s"), std::chrono::seconds(30));
  EXPECT_EQ(parse_duration("5m"), std::chrono::minutes(5));
  EXPECT_EQ(parse_duration("2h"), std::chrono::hours(2));
  EXPECT_EQ(parse_duration("5d"), std::chrono::hours(120));
  EXPECT_EQ(parse_duration("5x"), std::nullopt);
  EXPECT_EQ(parse_duration("-1m"), std::nullopt);
  EXPECT_EQ(parse_duration(""), std::nullopt);
}

}  // namespace
}  // namespace kurier::engine
