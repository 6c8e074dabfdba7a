// The known-keys check shared by kurier.toml, shaping.toml and campaign.toml: which
// key it names, where, and when it suggests a known name.
#include <gtest/gtest.h>

#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"

namespace kurier::engine {
namespace {

InputError error_of(const std::string& text, std::initializer_list<std::string_view> known, const TomlPlace& place,
                    const std::string& table = "") {
  const toml::table root = toml::parse(text, std::string_view("x.toml"));
  const toml::table& checked = table.empty() ? root : *root.at_path(table).as_table();
  try {
    reject_unknown_keys(checked, known, place);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << text;
  return InputError("", 0, "", "");
}

TEST(NearestName, SuggestsOnlyCloseNames) {
  EXPECT_EQ(nearest_name("size_limt", {"size_limit", "path"}), "size_limit");
  EXPECT_EQ(nearest_name("tsl", {"tls", "helo"}), "tls") << "a swap is one edit";
  EXPECT_EQ(nearest_name("conections", {"connections", "connection_rate"}), "connections");
  EXPECT_EQ(nearest_name("to", {"id"}), "") << "two edits in two letters is no resemblance";
  EXPECT_EQ(nearest_name("workerz_count", {"workers"}), "");
  EXPECT_EQ(nearest_name("anything", {}), "");
}

TEST(RejectUnknownKeys, NamesFileLineKeyAndTheNearestKnownKey) {
  auto e = error_of("[queue]\npath = \"q\"\nsize_limt = 5\n", {"size_limit", "path"}, {"kurier.toml", "queue"}, "queue");
  EXPECT_EQ(e.file(), "kurier.toml");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.field(), "queue.size_limt");
  EXPECT_STREQ(e.what(),
               "kurier.toml:3: field 'queue.size_limt': unknown key 'size_limt' in [queue]; did you mean 'size_limit'?");
}

TEST(RejectUnknownKeys, ListsTheKnownKeysWhenNoneIsClose) {
  auto e = error_of("[log]\nverbosity = 1\n", {"level"}, {"kurier.toml", "log"}, "log");
  EXPECT_EQ(e.line(), 2u);
  EXPECT_STREQ(e.what(), "kurier.toml:2: field 'log.verbosity': unknown key 'verbosity' in [log]; known names: level");
}

TEST(RejectUnknownKeys, CallsTablesSectionsAndNamesTheFirstInTheFile) {
  auto e = error_of("[qeue]\npath = 1\n[zzz]\n", {"queue", "dns"}, {"kurier.toml", ""});
  EXPECT_EQ(e.line(), 1u);
  EXPECT_EQ(e.field(), "qeue");
  EXPECT_STREQ(e.what(), "kurier.toml:1: field 'qeue': unknown section [qeue]; did you mean [queue]?");

  e = error_of("[zzz]\n[aaa]\n", {"queue"}, {"kurier.toml", ""});
  EXPECT_EQ(e.field(), "zzz") << "file order, not the table's key order";

  e = error_of("[smtp]\n[smtp.timeout]\nconnect_ms = 1\n", {"helo", "timeouts"}, {"kurier.toml", "smtp"}, "smtp");
  EXPECT_EQ(e.line(), 2u);
  EXPECT_NE(std::string(e.what()).find("unknown section [smtp.timeout]; did you mean [smtp.timeouts]?"),
            std::string::npos)
      << e.what();

  e = error_of("top = 1\n", {"queue"}, {"kurier.toml", ""});
  EXPECT_NE(std::string(e.what()).find("unknown key 'top' at the top level"), std::string::npos) << e.what();
}

TEST(RejectUnknownKeys, NamesArrayItemsWithDoubleBrackets) {
  const toml::table root = toml::parse("[[dkim.key]]\ndomain = \"x\"\nselctor = \"s\"\n", std::string_view("k.toml"));
  const toml::table& item = *root.at_path("dkim.key[0]").as_table();
  try {
    reject_unknown_keys(item, {"domain", "selector", "key"}, {"k.toml", "dkim.key", true});
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_EQ(e.field(), "dkim.key.selctor");
    EXPECT_NE(std::string(e.what()).find("in [[dkim.key]]; did you mean 'selector'?"), std::string::npos) << e.what();
  }
}

TEST(RejectUnknownKeys, AcceptsKnownKeys) {
  const toml::table root = toml::parse("a = 1\n[b]\nc = 2\n", std::string_view("ok.toml"));
  EXPECT_NO_THROW(reject_unknown_keys(root, {"a", "b"}, {"ok.toml", ""}));
}

}  // namespace
}  // namespace kurier::engine
