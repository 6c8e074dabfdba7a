// A scripted UDP DNS server for the cases dnsmasq cannot produce: SERVFAIL upstreams,
// malformed and truncated answers, CNAME loops, answers without an additional section.
//
// Contract: binds 127.0.0.1:<ephemeral port> (UDP only; nothing listens on TCP) and
// answers each query with whatever the responder returns; std::nullopt means silence.
// The responder runs on the server's own thread. The thread is stopped and joined on
// destruction. For tests only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kurier::test {

// Helpers to build answers. `query` is the raw query the server received.
namespace dns_wire {
std::string encode_name(const std::string& name);  // "a.test" -> "\1a\4test\0"
std::string query_name(const std::string& query);  // lower-case qname, no dot
std::uint16_t query_type(const std::string& query);
// Header (id copied from the query, QR+RD+RA, `rcode`, `tc`) plus the query's question.
std::string reply_header(const std::string& query, int rcode, std::uint16_t ancount, std::uint16_t nscount = 0,
                         std::uint16_t arcount = 0, bool truncated = false);
std::string rr(const std::string& name, std::uint16_t type, std::uint32_t ttl, const std::string& rdata);
std::string mx_rdata(std::uint16_t preference, const std::string& exchange);
std::string a_rdata(const std::string& ipv4);
std::string aaaa_rdata(const std::string& ipv6);
}  // namespace dns_wire

class FakeDnsServer {
 public:
  using Responder = std::function<std::optional<std::string>(const std::string& query)>;
  explicit FakeDnsServer(Responder responder);
  ~FakeDnsServer();
  FakeDnsServer(const FakeDnsServer&) = delete;
  FakeDnsServer& operator=(const FakeDnsServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  // "TYPE name" for every query received so far, e.g. "15 a.test".
  std::vector<std::string> queries() const;

 private:
  void serve();

  Responder responder_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> queries_;
  std::thread thread_;
};

}  // namespace kurier::test
