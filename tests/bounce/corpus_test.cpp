// Classifies every message of the bounce corpus (tests/data/bounces, from Sisimai's
// set-of-emails with Sisimai's answers) and compares kind, reason and the hard-bounce
// flag with expected.jsonl. Prints the figures; asserts the thresholds of issue 4.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "bounce/bounce.h"

namespace kurier::bounce {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(KURIER_SOURCE_DIR) / "tests/data/bounces";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Sisimai has no separate kind for delays (it reports them as bounces with a soft
// reason) and calls everything that is not a notice "not_bounce".
bool kind_matches(const std::string& expected, Kind actual) {
  if (expected == "bounce") return actual == Kind::bounce || actual == Kind::delay;
  if (expected == "not_bounce") return actual == Kind::reply || actual == Kind::unknown;
  return expected == to_string(actual);
}

TEST(BounceCorpus, MatchesReferenceAnswers) {
  std::ifstream in(kCorpus / "expected.jsonl");
  ASSERT_TRUE(in) << "missing " << (kCorpus / "expected.jsonl");
  std::map<std::string, std::vector<nlohmann::json>> rows_by_file;
  std::size_t rows = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto row = nlohmann::json::parse(line);
    rows_by_file[row["file"].get<std::string>()].push_back(row);
    ++rows;
  }
  ASSERT_GT(rows, 150U);

  std::size_t reason_ok = 0, hard_ok = 0, kind_ok = 0;
  for (const auto& [file, expected_rows] : rows_by_file) {
    const fs::path path = kCorpus / file;
    ASSERT_TRUE(fs::exists(path)) << path;
    const Message message = parse(read_file(path));
    for (std::size_t i = 0; i < expected_rows.size(); ++i) {
      const auto& row = expected_rows[i];
      const std::string want_recipient = row["recipient"].is_string() ? lower(row["recipient"]) : "";
      // The row's recipient, else the recipient in the same position.
      const RecipientReport* got = nullptr;
      for (const auto& r : message.recipients)
        if (!want_recipient.empty() && lower(r.recipient) == want_recipient) got = &r;
      if (got == nullptr && i < message.recipients.size()) got = &message.recipients[i];
      if (got == nullptr && !message.recipients.empty()) got = &message.recipients.front();

      const std::string want_kind = row["kind"];
      const std::string want_reason = row["reason"].is_string() ? row["reason"].get<std::string>() : "";
      const bool want_hard = row["hard"].get<bool>();
      const bool kind_good = kind_matches(want_kind, message.kind);
      const bool reason_good = want_reason.empty() ? kind_good : (got != nullptr && got->verdict.reason == want_reason);
      const bool hard_good = (got != nullptr ? got->verdict.hard : false) == want_hard;
      kind_ok += kind_good ? 1 : 0;
      reason_ok += reason_good ? 1 : 0;
      hard_ok += hard_good ? 1 : 0;
      if (!kind_good || !reason_good || !hard_good)
        std::printf("  differs: %s [%s] want %s/%s/%s got %s/%s/%s status=%s reply=%.100s\n", file.c_str(),
                    want_recipient.c_str(), want_kind.c_str(), want_reason.c_str(), want_hard ? "hard" : "-",
                    std::string(to_string(message.kind)).c_str(), got ? got->verdict.reason.c_str() : "(none)",
                    got && got->verdict.hard ? "hard" : "-", got ? got->status.c_str() : "",
                    got ? got->reply.c_str() : "");
    }
  }
  const double n = static_cast<double>(rows);
  const double reason_pct = 100.0 * static_cast<double>(reason_ok) / n;
  const double hard_pct = 100.0 * static_cast<double>(hard_ok) / n;
  const double kind_pct = 100.0 * static_cast<double>(kind_ok) / n;
  std::printf("bounce corpus: %zu rows in %zu files: reason %.1f%% (%zu), hard flag %.1f%% (%zu), kind %.1f%% (%zu)\n",
              rows, rows_by_file.size(), reason_pct, reason_ok, hard_pct, hard_ok, kind_pct, kind_ok);
  EXPECT_GE(reason_pct, 90.0);
  EXPECT_GE(hard_pct, 97.0);
  EXPECT_GE(kind_pct, 97.0);
}

}  // namespace
}  // namespace kurier::bounce
