// ServeHarness: dnsmasq + kurier-sink + `kurier serve` on loopback, stopped by PID.
#include "tests/integration/serve_harness.h"

#include <thread>

#include <gtest/gtest.h>

#include "engine/ops/http_server.h"

namespace kurier::test {
namespace fs = std::filesystem;

ServeHarness::ServeHarness(const std::string& subnet, const std::string& tag) : tag_(tag) {
  if (find_program("dnsmasq").empty()) throw std::runtime_error("dnsmasq is required (scripts/install-deps.sh)");
  const std::uint16_t smtp_port = free_tcp_port();
  std::vector<std::string> zone;
  std::vector<std::string> sink_args = {binary("kurier-sink").string(), "--script", (root() / "sink.toml").string(),
                                        "--store", (root() / "mail").string(), "--stats",
                                        (root() / "stats.json").string()};
  for (int i = 1; i <= 4; ++i) {
    const std::string domain = std::string(1, static_cast<char>('a' + i - 1)) + "-" + tag + ".test";
    const std::string ip = subnet + "." + std::to_string(i);
    domains_.push_back(domain);
    zone.push_back("mx-host=" + domain + ",mx." + domain + ",10");
    zone.push_back("host-record=mx." + domain + "," + ip);
    sink_args.push_back("--listen");
    sink_args.push_back(ip + ":" + std::to_string(smtp_port));
  }
  zone.push_back("local=/test/");
  dns_ = std::make_unique<Dnsmasq>(zone);

  write_file(root() / "sink.toml", R"(
[[rule]]
stage = "rcpt"
match = "unknown*"
reply = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
)");
  sink_ = std::make_unique<ChildProcess>(sink_args, root() / "sink.log");
  if (!wait_for_tcp(subnet + ".1", smtp_port, std::chrono::seconds(10)))
    throw std::runtime_error("kurier-sink did not start: " + read_file(root() / "sink.log"));

  http_port_ = free_tcp_port();
  write_file(root() / "shaping.toml", "[default]\nconnections = 4\nmessages_per_connection = 50\n");
  write_file(root() / "kurier.toml",
             "[queue]\npath = \"queue\"\n"
             "[dns]\nservers = [\"" + dns_->server() + "\"]\n"
             "[smtp]\nhelo = \"mta.sender.test\"\nport = " + std::to_string(smtp_port) + "\n"
             "[smtp.timeouts]\nconnect_ms = 2000\n"
             "[shaping]\nfile = \"shaping.toml\"\n"
             "[http]\nlisten = \"127.0.0.1:" + std::to_string(http_port_) + "\"\n"
             "[bounce]\nlisten = \"127.0.0.1:0\"\n"
             "[verp]\nsecret = \"serve-secret\"\n"
             "[log]\nlevel = \"info\"\n");
  serve_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{binary("kurier").string(), "serve", "--config", config().string()},
      root() / "serve.log");
  if (!wait_for_tcp("127.0.0.1", http_port_, std::chrono::seconds(15)))
    throw std::runtime_error("kurier serve did not start: " + serve_log());
}

ServeHarness::~ServeHarness() {
  if (serve_) serve_->stop();
  if (sink_) sink_->stop();
}

fs::path ServeHarness::write_campaign(const std::string& id, int per_domain) {
  std::string csv = "email,first_name\n";
  for (const auto& domain : domains_)
    for (int i = 0; i < per_domain; ++i)
      csv += (i % 5 == 4 ? "unknown" : "user") + std::to_string(i) + "@" + domain + ",Name" + std::to_string(i) + "\n";
  const fs::path dir = root() / id;
  fs::create_directories(dir);
  write_file(dir / "recipients.csv", csv);
  write_file(dir / "template.eml",
             "From: Serve <news@sender.test>\nTo: {{first_name}} <{{email}}>\nSubject: Hello {{first_name}}\n\n"
             "Hello {{first_name}}\n");
  write_file(dir / "campaign.toml", "id = \"" + id +
                                        "\"\nfrom = \"Serve <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                                        "recipients = \"recipients.csv\"\n[verp]\ndomain = \"bounces.sender.test\"\n");
  return dir / "campaign.toml";
}

std::map<std::string, DomainExpectation> ServeHarness::expected(int per_domain) const {
  std::map<std::string, DomainExpectation> out;
  for (const auto& domain : domains_) {
    auto& e = out[domain];
    for (int i = 0; i < per_domain; ++i) {
      if (i % 5 == 4) ++e.bounced_hard;
      else ++e.delivered;
    }
  }
  return out;
}

RunResult ServeHarness::submit(const fs::path& campaign) {
  return run({binary("kurier").string(), "submit", campaign.string(), "--config", config().string()},
             std::chrono::seconds(60));
}

std::string ServeHarness::get(const std::string& target) {
  engine::HttpResponse response;
  try {
    response = engine::http_call(http_address(), "GET", target);
  } catch (const std::exception& e) {
    // Unreachable: most likely the daemon died; its log says why (a sanitizer report too).
    throw std::runtime_error(std::string(e.what()) + "\n--- serve.log ---\n" + serve_log());
  }
  if (response.status != 200)
    throw std::runtime_error("GET " + target + ": HTTP " + std::to_string(response.status) + ": " + response.body);
  return response.body;
}

nlohmann::json ServeHarness::status() { return nlohmann::json::parse(get("/api/status")); }

nlohmann::json ServeHarness::wait_until_done(const std::string& id, std::uint64_t total, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json doc;
  while (std::chrono::steady_clock::now() < deadline) {
    doc = status();
    for (const auto& c : doc["campaigns"])
      if (c["campaign"] == id && c["total"] == total && c["done"] == true && c["in_flight"] == 0) return doc;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << "campaign " << id << " not done within " << timeout.count() << " s; last status: " << doc.dump()
                << "\nserve log:\n"
                << serve_log();
  return doc;
}

int ServeHarness::stop_serve() { return serve_->stop(15, std::chrono::seconds(20)); }

std::string ServeHarness::serve_log() const {
  return fs::exists(dir_.path() / "serve.log") ? read_file(dir_.path() / "serve.log") : std::string();
}

}  // namespace kurier::test
