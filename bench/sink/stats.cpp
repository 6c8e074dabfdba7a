// kurier-sink counters (any thread, relaxed atomics) and their JSON file (written by
// the control thread). A failed stats write returns false; the caller logs it and
// tries again at the next tick.
#include "bench/sink/stats.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace kurier::sink {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

void raise_max(std::atomic<std::uint64_t>& max, std::uint64_t value) {
  std::uint64_t seen = max.load(kRelaxed);
  while (seen < value && !max.compare_exchange_weak(seen, value, kRelaxed)) {
  }
}

// Wall-clock seconds, the same boundaries as max_messages_per_second counts in.
std::int64_t wall_second_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Stats::Stats(const std::vector<std::string>& addresses) {
  for (const std::string& ip : addresses) by_address_.try_emplace(ip, std::make_unique<AddressStats>());
}

AddressStats* Stats::address(const std::string& ip) {
  auto it = by_address_.find(ip);
  return it == by_address_.end() ? nullptr : it->second.get();
}

std::uint64_t Stats::connection_opened(AddressStats& address) {
  connections_.fetch_add(1, kRelaxed);
  address.connections.fetch_add(1, kRelaxed);
  raise_max(max_concurrent_, active_.fetch_add(1, kRelaxed) + 1);
  const std::uint64_t open = address.active.fetch_add(1, kRelaxed) + 1;
  raise_max(address.max_concurrent, open);
  if (SecondStats* s = second_at(wall_second_now())) {
    s->connections.fetch_add(1, kRelaxed);
    raise_max(s->peak_concurrent, active_.load(kRelaxed));
  }
  return open;
}

SecondStats* Stats::second_at(std::int64_t wall_second) {
  const auto second = static_cast<std::size_t>(std::max<std::int64_t>(0, wall_second - started_second_));
  if (second >= kTimelineSeconds) return nullptr;
  std::size_t size = timeline_size_.load(kRelaxed);
  while (size <= second) {
    if (timeline_size_.compare_exchange_weak(size, second + 1, kRelaxed)) {
      // A second with no new connection still has the ones left open.
      const std::uint64_t open = active_.load(kRelaxed);
      for (std::size_t i = size; i <= second; ++i) raise_max(timeline_[i].peak_concurrent, open);
      break;
    }
  }
  return &timeline_[second];
}

void Stats::connection_refused() {
  if (SecondStats* s = second_at(wall_second_now())) s->rejected_connections.fetch_add(1, kRelaxed);
}

bool Stats::mail_allowed(AddressStats& address, std::uint32_t per_second) {
  const std::int64_t wall_second = wall_second_now();
  SecondStats* s = second_at(wall_second);
  if (s) s->mail.fetch_add(1, kRelaxed);
  if (per_second == 0) return true;
  std::lock_guard lock(address.rate_mutex);
  if (address.rate_second != wall_second) {
    address.rate_second = wall_second;
    address.rate_count = 0;
  }
  if (address.rate_count >= per_second) {
    if (s) s->rejected_rate.fetch_add(1, kRelaxed);
    return false;
  }
  ++address.rate_count;
  return true;
}

void Stats::connection_closed(AddressStats& address) {
  active_.fetch_sub(1, kRelaxed);
  address.active.fetch_sub(1, kRelaxed);
}

void Stats::message_accepted(AddressStats& address) {
  messages_.fetch_add(1, kRelaxed);
  address.messages.fetch_add(1, kRelaxed);
  if (SecondStats* s = second_at(wall_second_now())) s->messages.fetch_add(1, kRelaxed);
}

void Stats::recipient_reply(int code) {
  if (code >= 200 && code < 300)
    recipients_accepted_.fetch_add(1, kRelaxed);
  else if (code >= 400 && code < 500)
    recipients_deferred_.fetch_add(1, kRelaxed);
  else
    recipients_rejected_.fetch_add(1, kRelaxed);
}

void Stats::fault_injected() { faults_.fetch_add(1, kRelaxed); }

std::string Stats::to_json() const {
  nlohmann::ordered_json json;
  json["connections"] = connections_.load(kRelaxed);
  json["messages"] = messages_.load(kRelaxed);
  json["recipients_accepted"] = recipients_accepted_.load(kRelaxed);
  json["recipients_rejected"] = recipients_rejected_.load(kRelaxed);
  json["recipients_deferred"] = recipients_deferred_.load(kRelaxed);
  json["faults"] = faults_.load(kRelaxed);
  json["max_concurrent_connections"] = max_concurrent_.load(kRelaxed);
  nlohmann::ordered_json by_address = nlohmann::ordered_json::object();
  for (const auto& [ip, counters] : by_address_) {
    nlohmann::ordered_json entry;
    entry["connections"] = counters->connections.load(kRelaxed);
    entry["messages"] = counters->messages.load(kRelaxed);
    entry["max_concurrent_connections"] = counters->max_concurrent.load(kRelaxed);
    by_address[ip] = std::move(entry);
  }
  json["by_address"] = std::move(by_address);
  nlohmann::ordered_json timeline = nlohmann::ordered_json::array();
  const std::size_t seconds = timeline_size_.load(kRelaxed);
  for (std::size_t i = 0; i < seconds; ++i) {
    const SecondStats& s = timeline_[i];
    timeline.push_back({{"connections", s.connections.load(kRelaxed)},
                        {"peak_concurrent", s.peak_concurrent.load(kRelaxed)},
                        {"mail", s.mail.load(kRelaxed)},
                        {"messages", s.messages.load(kRelaxed)},
                        {"rejected_rate", s.rejected_rate.load(kRelaxed)},
                        {"rejected_connections", s.rejected_connections.load(kRelaxed)}});
  }
  json["timeline"] = std::move(timeline);
  return json.dump() + "\n";
}

bool write_file_atomically(const std::filesystem::path& path, const std::string& content) {
  const std::string tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace kurier::sink
