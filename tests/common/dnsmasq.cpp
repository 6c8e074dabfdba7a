// A private dnsmasq per test, answering from given config lines on 127.0.0.1.
// Runs on the test's thread; start-up failures (missing binary, port taken, no answer
// within the deadline) throw std::runtime_error carrying dnsmasq's own messages.
#include "tests/common/dnsmasq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kurier::test {
namespace fs = std::filesystem;

namespace {

constexpr auto kStartDeadline = std::chrono::seconds(5);
// A free port can be taken between probing it and dnsmasq binding it (other tests run
// in parallel), so start-up is retried on a new port a few times.
constexpr int kStartAttempts = 4;
constexpr auto kProbeInterval = std::chrono::milliseconds(50);

// Directives whose first value is a name that dnsmasq serves from local data.
constexpr std::array<const char*, 9> kRecordDirectives = {
    "mx-host", "host-record", "txt-record", "dns-rr", "cname", "srv-host", "ptr-record", "caa-record", "naptr-record"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
  return s;
}

// The TLDs that must be local so that unknown names under them are NXDOMAIN
// rather than REFUSED ("no upstream server").
std::set<std::string> local_zones(const std::vector<std::string>& lines) {
  std::set<std::string> zones = {"test"};
  for (const auto& line : lines) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    if (std::find(kRecordDirectives.begin(), kRecordDirectives.end(), key) == kRecordDirectives.end()) continue;
    std::string name = lower(line.substr(eq + 1, line.find(',', eq) - eq - 1));
    while (!name.empty() && name.back() == '.') name.pop_back();
    if (name.empty()) continue;
    auto dot = name.rfind('.');
    zones.insert(dot == std::string::npos ? name : name.substr(dot + 1));
  }
  return zones;
}

std::string make_config(const std::vector<std::string>& lines) {
  std::ostringstream out;
  out << "# written by kurier::test::Dnsmasq\n";
  for (const auto& zone : local_zones(lines)) {
    const std::string local = "local=/" + zone + "/";
    if (std::find(lines.begin(), lines.end(), local) == lines.end()) out << local << "\n";
  }
  for (const auto& line : lines) out << line << "\n";
  return out.str();
}

// Sends one A query for a name under .test and waits for any answer with its id.
bool answers_udp(std::uint16_t port, std::chrono::milliseconds wait) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // id 0x6b72, RD, one question: kurier-ready.test IN A
  const unsigned char query[] = {0x6b, 0x72, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 12,   'k',  'u',  'r',  'i',  'e',  'r',  '-',  'r',  'e',  'a',  'd',
                                 'y',  4,    't',  'e',  's',  't',  0,    0x00, 0x01, 0x00, 0x01};
  bool ok = false;
  if (::sendto(fd, query, sizeof query, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
      static_cast<ssize_t>(sizeof query)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) > 0) {
      unsigned char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      ok = n >= 12 && buf[0] == 0x6b && buf[1] == 0x72;
    }
  }
  ::close(fd);
  return ok;
}

std::string read_if_exists(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  try {
    return read_file(path);
  } catch (const std::exception&) {
    return {};
  }
}

}  // namespace

Dnsmasq::Dnsmasq(std::vector<std::string> config_lines) {
  const fs::path program = find_program("dnsmasq");
  if (program.empty()) throw std::runtime_error("Dnsmasq: dnsmasq not found (apt-get install dnsmasq-base)");
  const fs::path conf = dir_.path() / "dnsmasq.conf";
  const fs::path log_file = dir_.path() / "dnsmasq.log";
  const fs::path stderr_file = dir_.path() / "stderr.log";
  write_file(conf, make_config(config_lines));

  std::string failure;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    port_ = free_udp_port();
    std::vector<std::string> argv = {
        program.string(),
        "--keep-in-foreground",
        "--conf-file=" + conf.string(),  // also keeps /etc/dnsmasq.conf and conf-dir out
        "--port=" + std::to_string(port_),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--cache-size=0",  // answers come from the config lines, never from a cache
        "--pid-file=" + (dir_.path() / "dnsmasq.pid").string(),
        "--log-facility=" + log_file.string(),
        "--log-queries",
    };
    // As root dnsmasq would drop to user "dnsmasq"/"nobody", which may not exist in a
    // container and could not write our log; as another user it cannot switch anyway.
    if (::geteuid() == 0) argv.push_back("--user=root");
    process_ = ChildProcess(argv, stderr_file);

    const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
    bool up = false;
    while (std::chrono::steady_clock::now() < deadline && process_.running()) {
      if (answers_udp(port_, kProbeInterval)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        up = wait_for_tcp("127.0.0.1", port_, std::max(left, std::chrono::milliseconds(1)));
        break;
      }
    }
    if (up) return;
    failure = "dnsmasq on port " + std::to_string(port_) +
              (process_.running() ? " did not answer within 5 s" : " exited") +
              "; stderr: " + read_if_exists(stderr_file) + " log: " + read_if_exists(log_file);
    process_.stop();
    if (std::chrono::steady_clock::now() >= deadline) break;  // not a port race: give up
  }
  throw std::runtime_error("Dnsmasq: " + failure);
}

std::string Dnsmasq::server() const { return "127.0.0.1:" + std::to_string(port_); }

void Dnsmasq::stop() { process_.stop(); }

std::string Dnsmasq::log() const { return read_if_exists(dir_.path() / "dnsmasq.log"); }

int Dnsmasq::query_count(const std::string& type, const std::string& name) const {
  const std::string needle = "query[" + type + "] " + name + " from";
  const std::string text = log();
  int count = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++count;
  return count;
}

}  // namespace kurier::test
