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
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kurier::sink {

// Counters for one local listen address (several ports on one address share them).
struct AddressStats {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> active{0};  // connections open now
  std::atomic<std::uint64_t> max_concurrent{0};
  // MAIL commands in the current wall-clock second (max_messages_per_second); kept
  // only when a limit is set, under the mutex.
  std::mutex rate_mutex;
  std::int64_t rate_second = -1;
  std::uint32_t rate_count = 0;
};

// What happened in one second since the sink started (the "timeline" in the JSON):
// rate-limit tests assert on these, e.g. no second with more MAIL commands than allowed.
// Relaxed atomics like the totals: every MAIL and message touches them.
struct SecondStats {
  std::atomic<std::uint64_t> connections{0};           // accepted TCP connections
  std::atomic<std::uint64_t> peak_concurrent{0};       // most connections open at once (all addresses)
  std::atomic<std::uint64_t> mail{0};                  // MAIL commands (transactions begun), refused or not
  std::atomic<std::uint64_t> messages{0};              // messages accepted
  std::atomic<std::uint64_t> rejected_rate{0};         // MAIL refused by max_messages_per_second
  std::atomic<std::uint64_t> rejected_connections{0};  // greetings refused by max_connections
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
  // A greeting refused by max_connections.
  void connection_refused();
  // Counts a MAIL command; false when it is beyond `per_second` (0 = no limit) for the
  // address in the current second (then counted as rejected_rate).
  bool mail_allowed(AddressStats& address, std::uint32_t per_second);
  // Counts one RCPT reply: 2xx accepted, 4xx deferred, 5xx rejected.
  void recipient_reply(int code);
  // A script rule's fault (drop, hang, garbage, ...) was carried out.
  void fault_injected();

  // {"connections":N,"messages":N,...,"by_address":{"127.0.0.1":{...}}}
  std::string to_json() const;

 private:
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> messages_{0};
  std::atomic<std::uint64_t> recipients_accepted_{0};
  std::atomic<std::uint64_t> recipients_rejected_{0};
  std::atomic<std::uint64_t> recipients_deferred_{0};
  std::atomic<std::uint64_t> faults_{0};
  std::atomic<std::uint64_t> active_{0};
  std::atomic<std::uint64_t> max_concurrent_{0};
  std::map<std::string, std::unique_ptr<AddressStats>> by_address_;  // sorted: stable JSON

  // Seconds kept in the timeline (an hour): a test or benchmark run is shorter.
  static constexpr std::size_t kTimelineSeconds = 3600;
  // The entry of wall-clock second `wall_second`; null past kTimelineSeconds.
  SecondStats* second_at(std::int64_t wall_second);
  const std::int64_t started_second_ =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Allocated up front (about 170 KB), so counting needs no lock; the JSON shows the
  // first timeline_size_ entries, up to the latest second anything happened in.
  const std::unique_ptr<SecondStats[]> timeline_ = std::make_unique<SecondStats[]>(kTimelineSeconds);
  std::atomic<std::size_t> timeline_size_{0};
};

// Writes `content` to `path` through "<path>.tmp" and rename(), so a reader sees the
// old or the new file, never a partial one. Returns false on an I/O error.
bool write_file_atomically(const std::filesystem::path& path, const std::string& content);

}  // namespace kurier::sink
