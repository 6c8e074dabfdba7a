// A scripted UDP DNS server for the cases dnsmasq cannot produce: SERVFAIL upstreams,
// malformed and truncated answers, CNAME loops, answers without an additional section.
//
// Contract: binds 127.0.0.1:<ephemeral port> (UDP; TCP on the same port only when a
// TCP responder is given) and answers each query with whatever the responder returns;
// std::nullopt means silence (over TCP too: the connection stays open, unanswered).
// Responders run on the server's own thread. The thread is stopped and joined on
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
  // UDP and TCP (RFC 1035 §4.2.2 length-prefixed messages), e.g. a UDP side that sets
  // TC so that the resolver must retry over TCP.
  FakeDnsServer(Responder udp, Responder tcp);
  ~FakeDnsServer();
  FakeDnsServer(const FakeDnsServer&) = delete;
  FakeDnsServer& operator=(const FakeDnsServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  // "TYPE name" for every query received so far, e.g. "15 a.test"; "tcp 15 a.test"
  // for queries that came over TCP.
  std::vector<std::string> queries() const;

 private:
  void serve();
  void record(const std::string& query, bool tcp);
  // Reads what a TCP client sent and answers every complete query; false: close it.
  bool serve_tcp(int fd, std::string& pending);

  Responder responder_;
  Responder tcp_responder_;
  int fd_ = -1;
  int tcp_fd_ = -1;  // listening socket; -1 without a TCP responder
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> queries_;
  std::thread thread_;
};

}  // namespace kurier::test
