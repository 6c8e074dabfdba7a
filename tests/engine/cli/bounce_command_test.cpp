// `kurier bounce classify`: the JSON line shape of docs/DESIGN.md, VERP decoding with the
// configured secret (a forged token gives null), the extra rules file, and bad input
// (unreadable file, bad rules file) ending in exit 2 with the file named.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cli/bounce_command.h"
#include "engine/core/input_error.h"
#include "engine/core/verp.h"
#include "tests/common/process.h"

namespace kurier::engine {
namespace {

std::string bounce_to(const std::string& verp_address, const std::string& text) {
  return "From: MAILER-DAEMON@mx.example.net\nTo: " + verp_address +
         "\nSubject: Undelivered Mail Returned to Sender\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
         "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
         "Final-Recipient: rfc822; ann@example.org\nAction: failed\nStatus: 5.1.1\n"
         "Diagnostic-Code: smtp; " + text + "\n--B--\n";
}

std::vector<nlohmann::json> lines_of(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(BounceClassifyCommand, PrintsOneLinePerRecipientWithDecodedVerp) {
  test::TempDir dir;
  const Verp verp("s3cret");
  const std::string good = verp.address({7, 42}, "bounce.example.com");
  test::write_file(dir.path() / "kurier.toml", "[verp]\nsecret = \"s3cret\"\n");
  test::write_file(dir.path() / "good.eml", bounce_to(good, "550 5.1.1 <ann@example.org>: User unknown"));
  // Same token shape under another secret: must not match.
  test::write_file(dir.path() / "forged.eml",
                   bounce_to(Verp("other").address({7, 42}, "bounce.example.com"), "550 5.1.1 User unknown"));
  test::write_file(dir.path() / "reply.eml", "From: a@example.org\nTo: " + good + "\nSubject: Re: hi\n\nThanks!\n");

  BounceClassifyOptions options;
  options.files = {dir.path() / "good.eml", dir.path() / "forged.eml", dir.path() / "reply.eml"};
  options.config = dir.path() / "kurier.toml";
  std::ostringstream out;
  ASSERT_EQ(bounce_classify_command(options, out), 0);
  const std::string text = out.str();
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 3U) << text;

  // Exactly docs/DESIGN.md's keys, in its order.
  EXPECT_EQ(text.substr(0, text.find('\n')).find("{\"file\":"), 0U);
  std::vector<std::string> keys;
  for (auto it = lines[0].begin(); it != lines[0].end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys.size(), 8U);
  EXPECT_EQ(lines[0]["kind"], "bounce");
  EXPECT_EQ(lines[0]["recipient"], "ann@example.org");
  EXPECT_EQ(lines[0]["status"], "5.1.1");
  EXPECT_EQ(lines[0]["reply"], "550 5.1.1 <ann@example.org>: User unknown");
  EXPECT_EQ(lines[0]["reason"], "userunknown");
  EXPECT_EQ(lines[0]["category"], "hard");
  EXPECT_EQ(lines[0]["verp"]["campaign"], "7");
  EXPECT_EQ(lines[0]["verp"]["recipient"], "42");
  EXPECT_TRUE(lines[1]["verp"].is_null());
  EXPECT_EQ(lines[2]["kind"], "reply");
  EXPECT_EQ(lines[2]["recipient"], "");
  EXPECT_EQ(lines[2]["verp"]["recipient"], "42");

  // Without a config there is no secret: verp is null.
  options.config.reset();
  std::ostringstream no_config;
  ASSERT_EQ(bounce_classify_command(options, no_config), 0);
  EXPECT_TRUE(lines_of(no_config.str())[0]["verp"].is_null());
}

TEST(BounceClassifyCommand, ExtraRulesFileFromConfig) {
  test::TempDir dir;
  test::write_file(dir.path() / "kurier.toml", "[verp]\nsecret = \"x\"\n[bounce]\nrules = \"extra.toml\"\n");
  test::write_file(dir.path() / "extra.toml", "[[pattern]]\nreason = \"blocked\"\ncontains = [\"acme shield\"]\n");
  test::write_file(dir.path() / "b.eml", bounce_to("x@example.com", "550 5.1.1 User unknown (ACME Shield 7)"));
  BounceClassifyOptions options;
  options.files = {dir.path() / "b.eml"};
  options.config = dir.path() / "kurier.toml";
  std::ostringstream out;
  ASSERT_EQ(bounce_classify_command(options, out), 0);
  EXPECT_EQ(lines_of(out.str())[0]["reason"], "blocked");

  test::write_file(dir.path() / "extra.toml", "[[pattern]]\nreason = \"nope\"\ncontains = [\"x\"]\n");
  try {
    std::ostringstream ignored;
    bounce_classify_command(options, ignored);
    FAIL() << "no error for a bad rules file";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), (dir.path() / "extra.toml").string());
    EXPECT_EQ(e.line(), 2U);
    EXPECT_EQ(e.field(), "pattern[0].reason");
  }
}

TEST(BounceClassifyCommand, UnreadableFileExitsTwoNamingIt) {
  test::TempDir dir;
  test::write_file(dir.path() / "ok.eml", bounce_to("x@example.com", "550 5.1.1 User unknown"));
  const std::string missing = (dir.path() / "missing.eml").string();
  const auto result = test::run({test::binary("kurier").string(), "bounce", "classify",
                                 (dir.path() / "ok.eml").string(), missing});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find(missing), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "");  // nothing printed before the input was known good

  const auto ok = test::run({test::binary("kurier").string(), "bounce", "classify", (dir.path() / "ok.eml").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("\"reason\":\"userunknown\""), std::string::npos) << ok.out;
}

}  // namespace
}  // namespace kurier::engine
