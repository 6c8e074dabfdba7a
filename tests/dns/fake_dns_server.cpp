// Scripted UDP DNS server for resolver tests. Runs its own thread; set-up failures
// throw std::runtime_error, malformed queries are ignored.
#include "tests/dns/fake_dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

namespace {

// Binds `fd` to 127.0.0.1:`port` (0 = ephemeral); returns the port or 0 on failure.
std::uint16_t bind_loopback(int fd, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  return ntohs(addr.sin_port);
}

// A TCP query is at most 64 KiB; a client sending more is not a resolver.
constexpr std::size_t kMaxTcpPending = 2 + 65535;

}  // namespace

FakeDnsServer::FakeDnsServer(Responder responder) : FakeDnsServer(std::move(responder), nullptr) {}

FakeDnsServer::FakeDnsServer(Responder udp, Responder tcp)
    : responder_(std::move(udp)), tcp_responder_(std::move(tcp)) {
  // The resolver uses one port for both: find an ephemeral UDP port free on TCP too.
  for (int attempt = 0; attempt < 20 && port_ == 0; ++attempt) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("FakeDnsServer: socket failed");
    port_ = bind_loopback(fd_, 0);
    if (port_ != 0 && tcp_responder_) {
      tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (tcp_fd_ < 0 || bind_loopback(tcp_fd_, port_) != port_ || ::listen(tcp_fd_, 16) != 0) {
        if (tcp_fd_ >= 0) ::close(tcp_fd_);
        tcp_fd_ = -1;
        port_ = 0;
      }
    }
    if (port_ == 0) ::close(fd_);
  }
  if (port_ == 0) throw std::runtime_error("FakeDnsServer: bind failed");
  thread_ = std::thread([this] { serve(); });
}

FakeDnsServer::~FakeDnsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
  if (tcp_fd_ >= 0) ::close(tcp_fd_);
}

std::vector<std::string> FakeDnsServer::queries() const {
  std::lock_guard lock(mutex_);
  return queries_;
}

void FakeDnsServer::record(const std::string& query, bool tcp) {
  std::lock_guard lock(mutex_);
  queries_.push_back((tcp ? "tcp " : "") + std::to_string(dns_wire::query_type(query)) + " " +
                     dns_wire::query_name(query));
}

bool FakeDnsServer::serve_tcp(int fd, std::string& pending) {
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return false;
  pending.append(buf, static_cast<std::size_t>(n));
  if (pending.size() > kMaxTcpPending) return false;
  while (pending.size() >= 2) {
    const std::size_t length = (static_cast<unsigned char>(pending[0]) << 8) | static_cast<unsigned char>(pending[1]);
    if (pending.size() < 2 + length) break;
    std::string query = pending.substr(2, length);
    pending.erase(0, 2 + length);
    if (query.size() < dns_wire::kHeaderSize) return false;
    record(query, true);
    auto answer = tcp_responder_(query);
    // Silence, not a hang-up: c-ares fails every query sharing a TCP connection that
    // closes, which would turn one domain's fault into its neighbours' failures.
    if (!answer) continue;
    std::string framed = dns_wire::u16(static_cast<std::uint16_t>(answer->size())) + *answer;
    if (::send(fd, framed.data(), framed.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(framed.size())) return false;
  }
  return true;
}

void FakeDnsServer::serve() {
  char buf[4096];
  struct TcpClient {
    int fd;
    std::string pending;
  };
  std::vector<TcpClient> clients;
  while (!stop_) {
    std::vector<pollfd> fds = {{fd_, POLLIN, 0}};
    if (tcp_fd_ >= 0) fds.push_back({tcp_fd_, POLLIN, 0});
    for (const auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), dns_wire::kPollMs) <= 0) continue;
    if (tcp_fd_ >= 0 && (fds[1].revents & POLLIN)) {
      int client = ::accept4(tcp_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) clients.push_back({client, {}});
    }
    const std::size_t first_client = tcp_fd_ >= 0 ? 2 : 1;
    for (std::size_t i = fds.size(); i-- > first_client;) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      auto it = std::find_if(clients.begin(), clients.end(), [&](const TcpClient& c) { return c.fd == fds[i].fd; });
      if (it != clients.end() && !serve_tcp(it->fd, it->pending)) {
        ::close(it->fd);
        clients.erase(it);
      }
    }
    if (!(fds[0].revents & POLLIN)) continue;
    sockaddr_in peer{};
    socklen_t peer_len = sizeof peer;
    ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &peer_len);
    if (n < static_cast<ssize_t>(dns_wire::kHeaderSize)) continue;
    std::string query(buf, static_cast<std::size_t>(n));
    record(query, false);
    if (auto answer = responder_(query))
      ::sendto(fd_, answer->data(), answer->size(), 0, reinterpret_cast<sockaddr*>(&peer), peer_len);
  }
  for (const auto& c : clients) ::close(c.fd);
}

}  // namespace kurier::test
