// `kurier check` through the real binary: the exact JSON line shape, --file as a list
// or a CSV with duplicates judged across the input, DNS verdicts from a real dnsmasq,
// the suppression list of a real queue (and a note when the queue is locked), exit 2
// for bad input.
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

class CheckCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    // An empty config: no ./kurier.toml of the working directory is picked up.
    test::write_file(dir_.path() / "kurier.toml", "[queue]\npath = \"queue\"\n");
  }
  test::RunResult check(std::vector<std::string> args) {
    std::vector<std::string> argv = {test::binary("kurier").string(), "check"};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run(argv, std::chrono::seconds(60));
  }
  std::string config() const { return (dir_.path() / "kurier.toml").string(); }
  test::TempDir dir_;
};

TEST_F(CheckCommand, JsonLinesHaveExactlyTheAgreedShape) {
  auto r = check({"--json", "--no-dns", "--config", config(), "user+tag@example.com", "info@mailinator.com",
                  "anna@gamil.com", "\"john doe\"@example.com", "broken", "user+tag@EXAMPLE.com"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out),
            (std::vector<std::string>{
                R"({"address":"user+tag@example.com","action":"accept","verdicts":[],"suggestion":null})",
                R"({"address":"info@mailinator.com","action":"reject","verdicts":["disposable","role"],"suggestion":null})",
                R"({"address":"anna@gamil.com","action":"warn","verdicts":["typo_suspect"],"suggestion":"anna@gmail.com"})",
                R"({"address":"\"john doe\"@example.com","action":"accept","verdicts":[],"suggestion":null})",
                R"({"address":"broken","action":"reject","verdicts":["syntax"],"suggestion":null})",
                R"({"address":"user+tag@EXAMPLE.com","action":"reject","verdicts":["duplicate"],"suggestion":null})",
            }));
}

TEST_F(CheckCommand, TextTableNamesTheProblemAndTheSuggestion) {
  auto r = check({"--no-dns", "--config", config(), "anna@gamil.com", "a..b@example.com", "ok@example.com"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("address")) << lines[0];
  EXPECT_NE(lines[1].find("typo_suspect"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("did you mean anna@gmail.com?"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("consecutive dots in local part"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("accept"), std::string::npos) << lines[3];
  EXPECT_EQ(lines[4], "3 addresses: 1 accept, 1 warn, 1 reject (no DNS checks)");
}

TEST_F(CheckCommand, FileAsListOrCsvDuplicatesAcrossTheInput) {
  test::write_file(dir_.path() / "list.txt", "# exported 2026-11-01\nanna@example.com\n\n  ben@example.com  \nANNA@example.com\n");
  auto r = check({"--json", "--no-dns", "--config", config(), "--file", (dir_.path() / "list.txt").string(),
                  "ben@Example.com"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  std::vector<std::string> actions, addresses;
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l);
    actions.push_back(j["action"]);
    addresses.push_back(j["address"]);
  }
  EXPECT_EQ(addresses, (std::vector<std::string>{"anna@example.com", "ben@example.com", "ANNA@example.com", "ben@Example.com"}));
  EXPECT_EQ(actions, (std::vector<std::string>{"accept", "accept", "reject", "reject"}));

  test::write_file(dir_.path() / "people.csv", "name,Email\n\"Doe, J\",j@example.com\nX,\"\"\"q d\"\"@example.com\"\nY,j@example.com\n");
  r = check({"--json", "--no-dns", "--config", config(), "--file", (dir_.path() / "people.csv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out),
            (std::vector<std::string>{
                R"({"address":"j@example.com","action":"accept","verdicts":[],"suggestion":null})",
                R"({"address":"\"q d\"@example.com","action":"accept","verdicts":[],"suggestion":null})",
                R"({"address":"j@example.com","action":"reject","verdicts":["duplicate"],"suggestion":null})",
            }));
}

TEST_F(CheckCommand, BadInputExitsTwoNamingTheFile) {
  auto r = check({"--config", config(), "--file", (dir_.path() / "missing.txt").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;

  test::write_file(dir_.path() / "noemail.csv", "name,mail\nA,a@example.com\n");
  r = check({"--config", config(), "--file", (dir_.path() / "noemail.csv").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("noemail.csv:1: field 'email'"), std::string::npos) << r.err;

  test::write_file(dir_.path() / "short.csv", "email,name\na@example.com,A\nb@example.com\n");
  r = check({"--config", config(), "--file", (dir_.path() / "short.csv").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("short.csv:3:"), std::string::npos) << r.err;

  r = check({"--config", config()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("give addresses or --file FILE"), std::string::npos) << r.err;

  test::write_file(dir_.path() / "bad.toml", "[hygiene.policy]\nrole = \"sometimes\"\n");
  r = check({"--config", (dir_.path() / "bad.toml").string(), "a@example.com"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.toml:2: field 'hygiene.policy.role'"), std::string::npos) << r.err;
}

TEST_F(CheckCommand, NoMailHostFromDnsAndPoliciesFromTheConfig) {
  if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
  test::Dnsmasq dns({"mx-host=good.test,mx.good.test,10", "host-record=mx.good.test,127.0.5.1",
                     "dns-rr=nullmx.test,15,000000"});
  test::write_file(dir_.path() / "kurier.toml", "[queue]\npath = \"queue\"\n[dns]\nservers = [\"" + dns.server() +
                                                    "\"]\ntimeout_ms = 500\n[hygiene.policy]\nrole = \"reject\"\n");
  auto r = check({"--json", "--config", config(), "a@good.test", "b@nullmx.test", "c@nowhere.test", "info@good.test",
                  "d@nowhere.test"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out),
            (std::vector<std::string>{
                R"({"address":"a@good.test","action":"accept","verdicts":[],"suggestion":null})",
                R"({"address":"b@nullmx.test","action":"reject","verdicts":["no_mail_host"],"suggestion":null})",
                R"({"address":"c@nowhere.test","action":"reject","verdicts":["no_mail_host"],"suggestion":null})",
                R"({"address":"info@good.test","action":"reject","verdicts":["role"],"suggestion":null})",
                R"({"address":"d@nowhere.test","action":"reject","verdicts":["no_mail_host"],"suggestion":null})",
            }));
  EXPECT_EQ(dns.query_count("MX", "nowhere.test"), 1) << "once per domain";
  EXPECT_EQ(dns.query_count("MX", "good.test"), 1);

  r = check({"--json", "--no-dns", "--config", config(), "b@nullmx.test"});
  EXPECT_EQ(lines_of(r.out), std::vector<std::string>{
                                 R"({"address":"b@nullmx.test","action":"accept","verdicts":[],"suggestion":null})"});
}

TEST_F(CheckCommand, SuppressionListOfTheQueueAlsoWhileAnotherProcessHoldsIt) {
  {
    auto store = queue::open_rocksdb_store((dir_.path() / "queue").string());
    store->suppress({"gone@example.com", "hard-bounce userunknown", 1});
  }
  auto r = check({"--json", "--no-dns", "--config", config(), "Gone@Example.com", "here@example.com"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out),
            (std::vector<std::string>{
                R"({"address":"Gone@Example.com","action":"reject","verdicts":["suppressed"],"suggestion":null})",
                R"({"address":"here@example.com","action":"accept","verdicts":[],"suggestion":null})",
            }));
  r = check({"--no-dns", "--config", config(), "gone@example.com"});
  EXPECT_NE(r.out.find("suppressed: hard-bounce userunknown"), std::string::npos) << r.out;

  // A running kurier holds the queue's lock: the check reads the list beside it.
  auto holder = queue::open_rocksdb_store((dir_.path() / "queue").string());
  holder->suppress({"later@example.com", "complaint abuse", 2});
  r = check({"--json", "--no-dns", "--config", config(), "gone@example.com", "later@example.com"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out),
            (std::vector<std::string>{
                R"({"address":"gone@example.com","action":"reject","verdicts":["suppressed"],"suggestion":null})",
                R"({"address":"later@example.com","action":"reject","verdicts":["suppressed"],"suggestion":null})"}));
  EXPECT_EQ(r.err, "");
}

}  // namespace
}  // namespace kurier
