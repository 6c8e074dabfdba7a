// Scripted UDP DNS server for resolver tests. Runs its own thread; set-up failures
// throw std::runtime_error, malformed queries are ignored.
#include "tests/dns/fake_dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

namespace kurier::test {

namespace dns_wire {
namespace {
constexpr std::size_t kHeaderSize = 12;
constexpr int kPollMs = 20;  // how quickly the thread notices stop_

std::string u16(std::uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string u32(std::uint32_t v) {
  return u16(static_cast<std::uint16_t>(v >> 16)) + u16(static_cast<std::uint16_t>(v));
}

// Length of the question section of `query` (name + type + class).
std::size_t question_length(const std::string& query) {
  std::size_t pos = kHeaderSize;
  while (pos < query.size() && query[pos] != 0) pos += 1 + static_cast<unsigned char>(query[pos]);
  return pos + 5 - kHeaderSize;
}
}  // namespace

std::string encode_name(const std::string& name) {
  std::string out;
  std::size_t start = 0;
  while (start < name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    out += static_cast<char>(dot - start);
    out += name.substr(start, dot - start);
    start = dot + 1;
  }
  out += '\0';
  return out;
}

std::string query_name(const std::string& query) {
  std::string name;
  std::size_t pos = kHeaderSize;
  while (pos < query.size() && query[pos] != 0) {
    auto len = static_cast<unsigned char>(query[pos]);
    if (!name.empty()) name += '.';
    for (std::size_t i = 0; i < len && pos + 1 + i < query.size(); ++i) {
      char c = query[pos + 1 + i];
      name += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    pos += 1 + len;
  }
  return name;
}

std::uint16_t query_type(const std::string& query) {
  std::size_t pos = kHeaderSize + question_length(query) - 4;
  if (pos + 2 > query.size()) return 0;
  return static_cast<std::uint16_t>((static_cast<unsigned char>(query[pos]) << 8) |
                                    static_cast<unsigned char>(query[pos + 1]));
}

std::string reply_header(const std::string& query, int rcode, std::uint16_t ancount, std::uint16_t nscount,
                         std::uint16_t arcount, bool truncated) {
  std::string out = query.substr(0, 2);
  auto flags = static_cast<std::uint16_t>(0x8180 | (truncated ? 0x0200 : 0) | (rcode & 0x0f));
  out += u16(flags) + u16(1) + u16(ancount) + u16(nscount) + u16(arcount);
  out += query.substr(kHeaderSize, question_length(query));
  return out;
}

std::string rr(const std::string& name, std::uint16_t type, std::uint32_t ttl, const std::string& rdata) {
  return encode_name(name) + u16(type) + u16(1) + u32(ttl) + u16(static_cast<std::uint16_t>(rdata.size())) + rdata;
}

std::string mx_rdata(std::uint16_t preference, const std::string& exchange) {
  return u16(preference) + encode_name(exchange);
}

std::string a_rdata(const std::string& ipv4) {
  unsigned char buf[4];
  inet_pton(AF_INET, ipv4.c_str(), buf);
  return std::string(reinterpret_cast<char*>(buf), sizeof buf);
}

std::string aaaa_rdata(const std::string& ipv6) {
  unsigned char buf[16];
  inet_pton(AF_INET6, ipv6.c_str(), buf);
  return std::string(reinterpret_cast<char*>(buf), sizeof buf);
}
}  // namespace dns_wire

FakeDnsServer::FakeDnsServer(Responder responder) : responder_(std::move(responder)) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd_ < 0) throw std::runtime_error("FakeDnsServer: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd_);
    throw std::runtime_error("FakeDnsServer: bind failed");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

FakeDnsServer::~FakeDnsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
}

std::vector<std::string> FakeDnsServer::queries() const {
  std::lock_guard lock(mutex_);
  return queries_;
}

void FakeDnsServer::serve() {
  char buf[4096];
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, dns_wire::kPollMs) <= 0) continue;
    sockaddr_in peer{};
    socklen_t peer_len = sizeof peer;
    ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &peer_len);
    if (n < static_cast<ssize_t>(dns_wire::kHeaderSize)) continue;
    std::string query(buf, static_cast<std::size_t>(n));
    {
      std::lock_guard lock(mutex_);
      queries_.push_back(std::to_string(dns_wire::query_type(query)) + " " + dns_wire::query_name(query));
    }
    if (auto answer = responder_(query))
      ::sendto(fd_, answer->data(), answer->size(), 0, reinterpret_cast<sockaddr*>(&peer), peer_len);
  }
}

}  // namespace kurier::test
