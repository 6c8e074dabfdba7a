// `kurier serve` + `kurier submit` end to end (issue 3 part 5): the daemon, started
// here and stopped by PID with SIGTERM, takes campaigns over HTTP while it runs,
// delivers them to kurier-sink via dnsmasq, reports live per-domain figures on
// /api/status, /metrics and `kurier status`, guards its changing endpoint with a
// token, and leaves every outcome durable in the queue after a graceful stop.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/ops/http_server.h"
#include "queue/store.h"
#include "tests/integration/daemon_rig.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const json* find_by(const json& rows, const char* key, const std::string& value) {
  for (const auto& r : rows)
    if (r.value(key, "") == value) return &r;
  return nullptr;
}

TEST(ServeIntegration, SubmittedCampaignsAreDeliveredAndReportedLive) {
  test::DaemonRig h(test::serve_options("127.0.5", "srv"));
  h.start_serve();
  constexpr int kPerDomain = 40;

  // The generated token: in the queue dir, owner-only.
  const fs::path token = h.root() / "queue" / "http.token";
  ASSERT_TRUE(fs::exists(token)) << h.serve_log();
  struct stat st {};
  ASSERT_EQ(::stat(token.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The changing endpoint refuses requests without the token, or with a wrong one.
  const std::string body = json{{"campaign", h.write_campaign_with_unknowns("sneaky", 1).string()}}.dump();
  EXPECT_EQ(engine::http_call(h.http_address(), "POST", "/api/campaigns", body).status, 401);
  EXPECT_EQ(engine::http_call(h.http_address(), "POST", "/api/campaigns", body, "wrong-token").status, 401);

  // Two campaigns, one after the other, to the running daemon.
  const std::uint64_t total = 4 * kPerDomain;
  auto first = h.submit(h.write_campaign_with_unknowns("first", kPerDomain));
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err << h.serve_log();
  EXPECT_NE(first.out.find("campaign first submitted: 160 recipients, 160 queued"), std::string::npos) << first.out;
  h.await_done("first", total);
  auto second = h.submit(h.write_campaign_with_unknowns("second", kPerDomain));
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  json status = h.await_done("second", total);

  // Per campaign: the counts the sink script and DNS dictate.
  const auto expected = h.expected_with_unknowns(kPerDomain);
  std::uint64_t want_delivered = 0, want_bounced = 0;
  for (const auto& [domain, e] : expected) {
    want_delivered += e.delivered;
    want_bounced += e.bounced_hard;
  }
  // The second campaign has the same addresses: the hard bounces of the first put
  // theirs on the suppression list, so they are suppressed at intake, never sent.
  for (const char* id : {"first", "second"}) {
    const bool second_run = std::string(id) == "second";
    const json* c = find_by(status["campaigns"], "campaign", id);
    ASSERT_NE(c, nullptr) << status.dump();
    EXPECT_EQ((*c)["delivered"], want_delivered) << id;
    EXPECT_EQ((*c)["bounced"], second_run ? 0 : want_bounced) << id;
    EXPECT_EQ((*c)["suppressed"], second_run ? want_bounced : 0) << id;
    EXPECT_EQ((*c)["queued"], 0) << id;
    EXPECT_EQ((*c)["deferred"], 0) << id;
  }
  // Per domain (both campaigns): the live series of the delivery engine.
  for (const auto& [domain, e] : expected) {
    const json* d = find_by(status["domains"], "domain", domain);
    ASSERT_NE(d, nullptr) << domain << " missing: " << status.dump();
    EXPECT_EQ((*d)["delivered"], 2 * e.delivered) << domain;
    EXPECT_EQ((*d)["bounced"], e.bounced_hard) << domain;
    EXPECT_EQ((*d)["bounced_by_category"]["hard"], e.bounced_hard) << domain;
    EXPECT_EQ((*d)["queued"], 0) << domain;
    EXPECT_EQ((*d)["in_flight"], 0) << domain;
    EXPECT_EQ((*d)["state"], "normal") << domain;
  }
  EXPECT_EQ(status["totals"]["delivered"], 2 * want_delivered);
  // The sink received exactly the delivered messages (its stats file is rewritten
  // every 200 ms).
  json stats;
  for (int i = 0; i < 20; ++i) {
    stats = json::parse(test::read_file(h.root() / "stats.json"), nullptr, false);
    if (stats.is_object() && stats.value("messages", std::uint64_t{0}) == 2 * want_delivered) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(stats.is_object());
  EXPECT_EQ(stats["messages"], 2 * want_delivered) << stats.dump();

  // `kurier status` finds the daemon and prints its live table; --json its document.
  const auto kurier = test::binary("kurier").string();
  auto table = test::run({kurier, "status", "--config", h.config().string()});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("live status"), std::string::npos) << table.out;
  for (const auto& domain : h.domains()) EXPECT_NE(table.out.find(domain), std::string::npos) << table.out;
  auto as_json = test::run({kurier, "status", "--json", "--campaign", "first", "--config", h.config().string()});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  auto live = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(live.is_object()) << as_json.out;
  ASSERT_EQ(live["campaigns"].size(), 1u);
  EXPECT_EQ(live["campaigns"][0]["delivered"], want_delivered);
  auto top = test::run({kurier, "top", "--iterations", "2", "--config", h.config().string()}, std::chrono::seconds(20));
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find(h.domains()[0]), std::string::npos) << top.out;

  // Bad input is reported by the daemon's intake with file, line and field; exit 2;
  // nothing of it is queued.
  const fs::path bad = h.write_campaign_with_unknowns("bad", 2);
  test::write_file(bad.parent_path() / "recipients.csv", "email,first_name\nuser1@a-srv.test,A\nuser2@a-srv.test\n");
  auto rejected = h.submit(bad);
  EXPECT_EQ(rejected.exit_code, 2) << rejected.out << rejected.err;
  EXPECT_NE(rejected.err.find("recipients.csv:3:"), std::string::npos) << rejected.err;
  EXPECT_EQ(find_by(h.status()["campaigns"], "campaign", "bad"), nullptr);

  // SIGTERM: graceful stop, exit 0; the queue is released and holds every outcome.
  int wait_status = h.stop_serve(SIGTERM);
  ASSERT_TRUE(WIFEXITED(wait_status)) << wait_status;
  EXPECT_EQ(WEXITSTATUS(wait_status), 0) << h.serve_log();
  {
    auto store = queue::open_rocksdb_store((h.root() / "queue").string());
    for (const char* id : {"first", "second"}) {
      auto c = store->find_campaign(id);
      ASSERT_TRUE(c) << id;
      auto counts = store->counts(c->id);
      EXPECT_EQ(counts.delivered, want_delivered) << id;
      EXPECT_EQ(counts.bounced, std::string(id) == "first" ? want_bounced : 0u) << id;
      EXPECT_EQ(counts.suppressed, std::string(id) == "first" ? 0u : want_bounced) << id;
      EXPECT_EQ(counts.pending(), 0u) << id;
    }
    EXPECT_FALSE(store->find_campaign("sneaky"));
  }  // closed: RocksDB allows one process at a time

  // With the daemon gone, `kurier status` reads the store.
  auto offline = test::run({kurier, "status", "--config", h.config().string()});
  EXPECT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_EQ(offline.out.find("live status"), std::string::npos) << offline.out;
  EXPECT_NE(offline.out.find("campaign first"), std::string::npos) << offline.out;
}

TEST(ServeIntegration, RefusesANonLoopbackAddressWithoutAToken) {
  test::TempDir dir;
  test::write_file(dir.path() / "kurier.toml",
                   "[queue]\npath = \"queue\"\n[http]\nlisten = \"0.0.0.0:0\"\n[bounce]\nlisten = \"\"\n"
                   "[verp]\nsecret = \"s\"\n");
  auto result = test::run({test::binary("kurier").string(), "serve", "--config", (dir.path() / "kurier.toml").string()},
                          std::chrono::seconds(20));
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("http.token"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir.path() / "queue")) << "nothing may be opened before the configuration is accepted";
}

TEST(ServeIntegration, SubmitWithoutADaemonFailsClearly) {
  test::TempDir dir;
  const auto port = test::free_tcp_port();
  test::write_file(dir.path() / "kurier.toml", "[http]\nlisten = \"127.0.0.1:" + std::to_string(port) +
                                                   "\"\ntoken = \"t\"\n[verp]\nsecret = \"s\"\n");
  test::write_file(dir.path() / "recipients.csv", "email\na@b.test\n");
  test::write_file(dir.path() / "template.eml", "Subject: x\n\nx\n");
  test::write_file(dir.path() / "campaign.toml",
                   "id = \"c\"\nfrom = \"a@b.test\"\ntemplate = \"template.eml\"\nrecipients = \"recipients.csv\"\n"
                   "[verp]\ndomain = \"b.test\"\n");
  auto result = test::run({test::binary("kurier").string(), "submit", (dir.path() / "campaign.toml").string(),
                           "--config", (dir.path() / "kurier.toml").string()});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("no daemon answers"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace kurier
