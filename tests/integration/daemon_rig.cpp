// DaemonRig: dnsmasq + a storing kurier-sink + a `kurier serve` that tests drive, kill
// and restart on one queue; the Ledger reads the queue's report and the sink's store.
// Test thread only; start-up failures throw std::runtime_error.
#include "tests/integration/daemon_rig.h"

#include <signal.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "engine/ops/http_server.h"

namespace kurier::test {
namespace fs = std::filesystem;

namespace {
// A daemon restarting on a loaded 2-core machine opens RocksDB, replays its WAL and
// binds its ports; give it room.
constexpr auto kServeStartTimeout = std::chrono::seconds(20);

// "<a@b>, <c@d>" -> {"a@b", "c@d"}
std::vector<std::string> sink_recipients(const std::string& header) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = header.find('<', pos)) != std::string::npos) {
    const auto end = header.find('>', pos);
    if (end == std::string::npos) break;
    out.push_back(header.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return out;
}
}  // namespace

RigOptions serve_options(std::string subnet, std::string tag) {
  RigOptions options;
  options.subnet = std::move(subnet);
  options.tag = std::move(tag);
  options.window = std::nullopt;
  options.tls_disabled = false;
  options.messages_per_connection = 50;
  options.bounce_listener = true;
  options.sink_rules = R"(
[[rule]]
stage = "rcpt"
match = "unknown*"
reply = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
)";
  options.teardown_signal = SIGTERM;
  return options;
}

DaemonRig::DaemonRig(RigOptions options) : options_(std::move(options)) {
  if (find_program("dnsmasq").empty()) throw std::runtime_error("dnsmasq is required (scripts/install-deps.sh)");
  const std::uint16_t smtp_port = free_tcp_port();
  start_dns_and_sink(smtp_port);
  http_port_ = free_tcp_port();
  write_config(smtp_port);
  fs::create_directories(queue_dir());
}

void DaemonRig::start_dns_and_sink(std::uint16_t smtp_port) {
  std::vector<std::string> zone;
  std::vector<std::string> sink_args = {binary("kurier-sink").string(), "--script", (root() / "sink.toml").string(),
                                        "--store", (root() / "mail").string(), "--stats",
                                        (root() / "stats.json").string()};
  for (int i = 1; i <= 4; ++i) {
    const std::string domain = std::string(1, static_cast<char>('a' + i - 1)) + "-" + options_.tag + ".test";
    const std::string ip = options_.subnet + "." + std::to_string(i);
    domains_.push_back(domain);
    zone.push_back("mx-host=" + domain + ",mx." + domain + ",10");
    zone.push_back("host-record=mx." + domain + "," + ip);
    sink_args.push_back("--listen");
    sink_args.push_back(ip + ":" + std::to_string(smtp_port));
  }
  zone.push_back("local=/test/");
  dns_ = std::make_unique<Dnsmasq>(zone);

  write_file(root() / "sink.toml",
             "reply_delay_ms = " + std::to_string(options_.reply_delay_ms) + "\n" + options_.sink_rules);
  sink_ = std::make_unique<ChildProcess>(sink_args, root() / "sink.log");
  if (!wait_for_tcp(options_.subnet + ".1", smtp_port, std::chrono::seconds(10)))
    throw std::runtime_error("kurier-sink did not start: " + read_file(root() / "sink.log"));
}

void DaemonRig::write_config(std::uint16_t smtp_port) const {
  write_file(root() / "shaping.toml", "[default]\nconnections = " + std::to_string(options_.connections) +
                                          "\nmessages_per_connection = " +
                                          std::to_string(options_.messages_per_connection) + "\n");
  const std::string window =
      options_.window ? "[engine]\nwindow = " + std::to_string(*options_.window) + "\n" : std::string();
  write_file(config(), "[queue]\npath = \"" + queue_dir().string() + "\"\n"
                       "[dns]\nservers = [\"" + dns_->server() + "\"]\n"
                       "[smtp]\nhelo = \"mta.sender.test\"\nport = " + std::to_string(smtp_port) + "\n" +
                       (options_.tls_disabled ? "tls = \"disabled\"\n" : "") +
                       "[smtp.timeouts]\nconnect_ms = 2000\n"
                       "[shaping]\nfile = \"" + (root() / "shaping.toml").string() + "\"\n" +
                       window +
                       "[http]\nlisten = \"" + http_address() + "\"\n"
                       "[bounce]\nlisten = \"" + (options_.bounce_listener ? "127.0.0.1:0" : "") + "\"\n"
                       "[verp]\nsecret = \"rig-secret\"\n"
                       "[log]\nlevel = \"info\"\n" + options_.extra_config);
}

DaemonRig::~DaemonRig() {
  if (serve_) serve_->stop(options_.teardown_signal);
  if (sink_) sink_->stop();
}

fs::path DaemonRig::write_campaign(const std::string& id, int per_domain, const std::string& local) {
  std::ostringstream csv;
  csv << "email,n\n";
  for (int i = 0; i < per_domain; ++i)
    for (const auto& domain : domains_) csv << local << i << '@' << domain << ',' << i << '\n';
  return write_campaign_files(id, "Rig <news@sender.test>", csv.str(),
                              "To: <{{email}}>\nSubject: n{{n}}\n\nHello {{n}}\n");
}

fs::path DaemonRig::write_campaign_with_unknowns(const std::string& id, int per_domain, int every) {
  std::string csv = "email,first_name\n";
  for (const auto& domain : domains_)
    for (int i = 0; i < per_domain; ++i)
      csv += (i % every == every - 1 ? "unknown" : "user") + std::to_string(i) + "@" + domain + ",Name" + std::to_string(i) + "\n";
  return write_campaign_files(id, "Serve <news@sender.test>", csv,
                              "To: {{first_name}} <{{email}}>\nSubject: Hello {{first_name}}\n\n"
                              "Hello {{first_name}}\n");
}

std::map<std::string, DomainExpectation> DaemonRig::expected_with_unknowns(int per_domain) const {
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

fs::path DaemonRig::write_campaign_files(const std::string& id, const std::string& from, const std::string& csv,
                                         const std::string& template_rest) const {
  const fs::path dir = root() / id;
  fs::create_directories(dir);
  write_file(dir / "recipients.csv", csv);
  write_file(dir / "template.eml", "From: " + from + "\n" + template_rest);
  write_file(dir / "campaign.toml", "id = \"" + id + "\"\nfrom = \"" + from +
                                        "\"\ntemplate = \"template.eml\"\n"
                                        "recipients = \"recipients.csv\"\n[verp]\ndomain = \"bounces.sender.test\"\n");
  return dir / "campaign.toml";
}

std::vector<std::string> DaemonRig::serve_argv() const {
  std::vector<std::string> argv = options_.prefix;
  argv.insert(argv.end(), {binary("kurier").string(), "serve", "--config", config().string()});
  return argv;
}

void DaemonRig::launch_serve() {
  if (serve_) serve_->stop(SIGKILL);
  serve_ = std::make_unique<ChildProcess>(serve_argv(), root() / "serve.log");
}

void DaemonRig::start_serve() {
  launch_serve();
  const auto deadline = std::chrono::steady_clock::now() + kServeStartTimeout;
  while (!wait_for_tcp("127.0.0.1", http_port_, std::chrono::milliseconds(100))) {
    if (!serve_->running()) throw std::runtime_error("kurier serve exited at start: " + serve_log());
    if (std::chrono::steady_clock::now() >= deadline) throw std::runtime_error("kurier serve did not start: " + serve_log());
  }
}

bool DaemonRig::serve_running() { return serve_ && serve_->running(); }

int DaemonRig::stop_serve(int signal, std::chrono::milliseconds grace) {
  return serve_ ? serve_->stop(signal, grace) : -1;
}

int DaemonRig::wait_serve(std::chrono::milliseconds timeout) { return serve_ ? serve_->wait(timeout) : -1; }

std::string DaemonRig::serve_log() const {
  return fs::exists(root() / "serve.log") ? read_file(root() / "serve.log") : std::string();
}

RunResult DaemonRig::kurier(std::vector<std::string> args, std::chrono::seconds timeout) {
  std::vector<std::string> argv = options_.prefix;
  argv.push_back(binary("kurier").string());
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--config", config().string()});
  return run(argv, timeout);
}

std::string DaemonRig::get(const std::string& target) {
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

std::optional<nlohmann::json> DaemonRig::campaign_status(const std::string& id) {
  engine::HttpResponse response;
  try {
    response = engine::http_call(http_address(), "GET", "/api/status", {}, {},
                                 std::chrono::seconds(5));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (response.status != 200) return std::nullopt;
  auto doc = nlohmann::json::parse(response.body, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  for (const auto& c : doc.value("campaigns", nlohmann::json::array()))
    if (c.value("campaign", "") == id) return c;
  return nlohmann::json::object();
}

bool DaemonRig::wait_until_done(const std::string& id, std::uint64_t total, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto c = campaign_status(id);
    if (c && c->value("total", std::uint64_t{0}) == total && c->value("done", false) &&
        c->value("in_flight", std::uint64_t{1}) == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

nlohmann::json DaemonRig::await_done(const std::string& id, std::uint64_t total, std::chrono::seconds timeout) {
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

std::uint64_t DaemonRig::sink_messages() const {
  std::ifstream in(root() / "stats.json", std::ios::binary);
  if (!in) return 0;
  auto stats = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}), nullptr, false);
  return stats.is_object() ? stats.value("messages", std::uint64_t{0}) : 0;
}

void DaemonRig::wait_for_sink_messages(std::uint64_t count, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (sink_messages() < count && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

Ledger DaemonRig::ledger(const std::string& campaign) {
  Ledger ledger;
  auto report = kurier({"report", campaign, "--format", "csv"}, std::chrono::seconds(120));
  if (report.exit_code != 0) throw std::runtime_error("kurier report failed: " + report.err);
  std::istringstream lines(report.out);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    const auto first = line.find(',');
    const auto second = line.find(',', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    ledger.state[line.substr(0, first)] = line.substr(first + 1, second - first - 1);
  }
  if (!fs::exists(root() / "mail")) return ledger;
  for (const auto& entry : fs::recursive_directory_iterator(root() / "mail")) {
    if (entry.path().extension() != ".eml") continue;
    ++ledger.messages;
    const std::string message = read_file(entry.path());
    const auto pos = message.find("X-Sink-Rcpt: ");
    if (pos == std::string::npos) continue;
    for (const auto& rcpt : sink_recipients(message.substr(pos, message.find("\r\n", pos) - pos)))
      ++ledger.received[rcpt];
  }
  return ledger;
}

}  // namespace kurier::test
