// A private dnsmasq for tests: an authoritative-looking DNS server on 127.0.0.1 that
// answers only from the config lines it is given.
//
// Contract: the constructor starts /usr/sbin/dnsmasq (found via find_program) in the
// foreground on 127.0.0.1:<free port>, UDP and TCP, with its own --conf-file, pid file
// and log file in a fresh temp dir: no upstream servers, no /etc/hosts, no resolv.conf,
// no response cache. Names under the TLD "test" and under the TLD of every name the
// config lines define are local: unknown names there get NXDOMAIN, names that exist
// with other types get NODATA. Names elsewhere get REFUSED (there is no upstream),
// unless a `server=/zone/ip#port` line forwards them. Every query is logged (log()).
// It returns once dnsmasq has answered a UDP query and accepts TCP connections.
//
// Record TTLs are 0 unless a line says otherwise (dnsmasq's local-ttl default).
//
// Ownership: the process is stopped by its PID (SIGTERM, then SIGKILL) on destruction
// or stop(); the temp dir is removed. Throws std::runtime_error if dnsmasq is missing,
// exits, or does not answer within 5 s. For tests only; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/common/process.h"

namespace kurier::test {

class Dnsmasq {
 public:
  // Lines in dnsmasq.conf syntax, e.g. "mx-host=a.test,mx1.a.test,10",
  // "host-record=mx1.a.test,127.0.1.1", "dns-rr=nullmx.test,15,000000".
  explicit Dnsmasq(std::vector<std::string> config_lines);
  ~Dnsmasq() = default;
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  std::uint16_t port() const { return port_; }
  std::string server() const;                   // "127.0.0.1:PORT", for ResolverOptions::servers
  pid_t pid() const { return process_.pid(); }  // -1 once stopped

  // Stops dnsmasq now, by PID, and waits for it (e.g. to show that answers come from a
  // cache). Idempotent.
  void stop();
  // dnsmasq's log so far: one "query[TYPE] name from 127.0.0.1" line per query received.
  std::string log() const;
  // Number of queries of `type` ("MX", "A", "AAAA", ...) for `name` received so far.
  int query_count(const std::string& type, const std::string& name) const;
  const std::filesystem::path& directory() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::uint16_t port_ = 0;
  ChildProcess process_;
};

}  // namespace kurier::test
