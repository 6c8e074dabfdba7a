// kurier-sink counters and the --stats JSON file.
//
// Contract: every counter is a relaxed atomic, updated by the worker threads and read
// by the thread that writes the stats file; a snapshot is therefore consistent per
// counter, not across counters (good enough for a file rewritten every 200 ms and
// once more after the workers have stopped). The set of listen addresses is fixed at
// construction, so lookups need no lock. Stats must outlive every session.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kurier::sink {

// Counters for one local listen address (several ports on one address share them).
struct AddressStats {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> active{0};  // connections open now
  std::atomic<std::uint64_t> max_concurrent{0};
};

class Stats {
 public:
  // `addresses`: the canonical listen IPs; duplicates are merged.
  explicit Stats(const std::vector<std::string>& addresses);

  // The counters of a listen address given to the constructor; nullptr if unknown.
  AddressStats* address(const std::string& ip);

  // A TCP connection was accepted; returns the number open on its address, this one included.
  std::uint64_t connection_opened(AddressStats& address);
  void connection_closed(AddressStats& address);
  void message_accepted(AddressStats& address);
  // Counts one RCPT reply: 2xx accepted, 4xx deferred, 5xx rejected.
  void recipient_reply(int code);

  // {"connections":N,"messages":N,...,"by_address":{"127.0.0.1":{...}}}
  std::string to_json() const;

 private:
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> messages_{0};
  std::atomic<std::uint64_t> recipients_accepted_{0};
  std::atomic<std::uint64_t> recipients_rejected_{0};
  std::atomic<std::uint64_t> recipients_deferred_{0};
  std::atomic<std::uint64_t> active_{0};
  std::atomic<std::uint64_t> max_concurrent_{0};
  std::map<std::string, std::unique_ptr<AddressStats>> by_address_;  // sorted: stable JSON
};

// Writes `content` to `path` through "<path>.tmp" and rename(), so a reader sees the
// old or the new file, never a partial one. Returns false on an I/O error.
bool write_file_atomically(const std::filesystem::path& path, const std::string& content);

}  // namespace kurier::sink
