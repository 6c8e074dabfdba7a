// `kurier submit` to a running `kurier serve` gets the same intake hygiene as
// `kurier send`, including the DNS check (no_mail_host) against the daemon's
// configured resolvers: a domain that does not exist is suppressed at intake with
// that verdict and never sent; the rest of the campaign is delivered.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <map>

#include "queue/store.h"
#include "tests/integration/daemon_rig.h"
#include "tests/integration/campaign_files.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;

TEST(ServeHygiene, SubmitChecksMailHostsLikeSend) {
  test::DaemonRig h(test::serve_options("127.0.8", "hyg"));
  h.start_serve();
  const fs::path campaign = h.write_campaign_with_unknowns("hygiene", 1);
  const std::string& live = h.domains()[0];
  // nowhere-hyg.test is NXDOMAIN in the harness's dnsmasq (local=/test/): only a DNS
  // lookup at intake can tell; its syntax is fine.
  test::write_file(campaign.parent_path() / "recipients.csv",
                   "email,first_name\nuser1@" + live + ",A\nuser2@" + live + ",B\nx@nowhere-hyg.test,C\n"
                   "info@" + live + ",D\n");
  auto submitted = h.submit(campaign);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err << h.serve_log();
  EXPECT_NE(submitted.out.find("campaign hygiene submitted: 4 recipients, 3 queued, 1 suppressed"), std::string::npos)
      << submitted.out;
  h.await_done("hygiene", 4);

  ASSERT_EQ(WEXITSTATUS(h.stop_serve(SIGTERM)), 0) << h.serve_log();
  auto store = queue::open_rocksdb_store((h.root() / "queue").string());
  auto c = store->find_campaign("hygiene");
  ASSERT_TRUE(c);
  std::map<std::string, queue::Status> status = test::statuses_by_address(*store, c->id);
  ASSERT_EQ(status.size(), 4u);
  EXPECT_EQ(status["x@nowhere-hyg.test"].state, queue::State::suppressed);
  EXPECT_EQ(status["x@nowhere-hyg.test"].reason, "no_mail_host");
  EXPECT_EQ(status["x@nowhere-hyg.test"].attempts, 0u) << "never sent";
  for (const auto& ok : {"user1@", "user2@", "info@"}) {
    EXPECT_EQ(status[ok + live].state, queue::State::delivered) << ok << live << " (role accounts only warn)";
  }
}

}  // namespace
}  // namespace kurier
