// A real Prometheus server (Debian package) scrapes `kurier serve`'s /metrics every
// second while a campaign is delivered; its query API must then return, per domain,
// exactly the delivered and bounced totals the run produced (issue 3, "Done when").
// Prometheus runs on a private port with its own config and TSDB directory and is
// stopped by PID; the system service is never involved.
#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/ops/http_server.h"
#include "tests/integration/daemon_rig.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string url_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Instant query -> {label value of `label`: sample value}; empty on any failure.
std::map<std::string, double> query(const std::string& prometheus, const std::string& promql, const char* label) {
  std::map<std::string, double> out;
  engine::HttpResponse response;
  try {
    response = engine::http_call(prometheus, "GET", "/api/v1/query?query=" + url_encode(promql));
  } catch (const std::exception&) {
    return out;
  }
  auto doc = json::parse(response.body, nullptr, false);
  if (!doc.is_object() || doc.value("status", "") != "success") return out;
  for (const auto& r : doc["data"]["result"])
    out[r["metric"].value(label, "")] = std::stod(r["value"][1].get<std::string>());
  return out;
}

TEST(PrometheusIntegration, ScrapedSeriesMatchTheRunsCounts) {
  const fs::path prometheus_bin = test::find_program("prometheus");
  ASSERT_FALSE(prometheus_bin.empty()) << "the Debian package 'prometheus' is required (scripts/install-deps.sh)";
  test::DaemonRig h(test::serve_options("127.0.6", "prm"));
  h.start_serve();

  const std::uint16_t port = test::free_tcp_port();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  test::write_file(h.root() / "prom.yml",
                   "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: kurier\n    static_configs:\n"
                   "      - targets: ['" + h.http_address() + "']\n");
  test::ChildProcess prometheus({prometheus_bin.string(), "--config.file=" + (h.root() / "prom.yml").string(),
                                 "--storage.tsdb.path=" + (h.root() / "prom-data").string(),
                                 "--web.listen-address=" + address, "--log.level=warn"},
                                h.root() / "prometheus.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", port, std::chrono::seconds(30))) << test::read_file(h.root() / "prometheus.log");

  constexpr int kPerDomain = 30;
  auto submitted = h.submit(h.write_campaign_with_unknowns("scraped", kPerDomain));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err << h.serve_log();
  json status = h.await_done("scraped", 4 * kPerDomain);

  // Scrapes happen every second: poll until the last one saw the final figures.
  const auto expected = h.expected_with_unknowns(kPerDomain);
  std::map<std::string, double> delivered, bounced, up;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto matches = [&] {
    if (delivered.size() != expected.size() || bounced.size() != expected.size()) return false;
    for (const auto& [domain, e] : expected)
      if (delivered[domain] != double(e.delivered) || bounced[domain] != double(e.bounced_hard)) return false;
    return true;
  };
  while (std::chrono::steady_clock::now() < deadline) {
    up = query(address, "up{job=\"kurier\"}", "instance");
    delivered = query(address, "kurier_domain_delivered_total", "domain");
    bounced = query(address, "kurier_domain_bounced_total{category=\"hard\"}", "domain");
    if (matches()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ASSERT_EQ(up.size(), 1u) << "Prometheus never scraped kurier: " << test::read_file(h.root() / "prometheus.log");
  EXPECT_EQ(up.begin()->second, 1.0);
  for (const auto& [domain, e] : expected) {
    EXPECT_EQ(delivered[domain], double(e.delivered)) << domain;
    EXPECT_EQ(bounced[domain], double(e.bounced_hard)) << domain;
    // And the same numbers as the daemon's own status document.
    for (const auto& d : status["domains"]) {
      if (d["domain"] == domain) {
        EXPECT_EQ(d["delivered"].get<double>(), delivered[domain]) << domain;
      }
    }
  }
  // Nothing was bounced in any other category, nothing is left queued or in flight.
  auto others = query(address, "sum(kurier_domain_bounced_total{category!=\"hard\"})", "");
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others.begin()->second, 0.0);
  auto pending = query(address, "sum(kurier_domain_queued + kurier_domain_in_flight)", "");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending.begin()->second, 0.0);

  EXPECT_EQ(prometheus.stop(), 0) << test::read_file(h.root() / "prometheus.log");
}

}  // namespace
}  // namespace kurier
