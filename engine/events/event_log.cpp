// The event log's writer (contract in event_log.h): one write() per batch under a
// mutex, rotation by renaming the live file to F.<seq>. Any thread; an I/O error is
// logged and counted, never thrown, except from the constructor (start-up).
#include "engine/events/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {
namespace fs = std::filesystem;

namespace {

// The most of a file's end read to find its last line: far beyond any event line
// (reply texts are bounded by the SMTP client), small enough to read at every open.
constexpr std::size_t kTailBytes = 1 << 20;
// Bytes reserved per event when a batch is rendered (a typical line is 350-500).
constexpr std::size_t kLineGuess = 512;

std::string errno_text() { return std::strerror(errno); }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The last `n` bytes of the open file of size `size`.
std::string read_tail(int fd, std::uint64_t size, std::size_t n) {
  const std::uint64_t from = size > n ? size - n : 0;
  std::string data(static_cast<std::size_t>(size - from), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    ssize_t r = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(from + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  data.resize(got);
  return data;
}

}  // namespace

fs::path rotated_file(const fs::path& file, std::uint64_t seq) {
  return fs::path(file.string() + "." + std::to_string(seq));
}

LogFiles list_log_files(const fs::path& file) {
  LogFiles files;
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  const std::string prefix = file.filename().string() + ".";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix) || !all_digits(std::string_view(name).substr(prefix.size()))) continue;
    files.rotated.push_back(std::stoull(name.substr(prefix.size())));
  }
  std::sort(files.rotated.begin(), files.rotated.end());
  files.live_seq = files.rotated.empty() ? 1 : files.rotated.back() + 1;
  return files;
}

std::optional<std::uint64_t> line_id(std::string_view line) {
  constexpr std::string_view kHead = "{\"id\":";
  if (!line.starts_with(kHead)) return std::nullopt;
  std::uint64_t id = 0;
  std::size_t i = kHead.size();
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) id = id * 10 + std::uint64_t(line[i] - '0');
  if (i == kHead.size()) return std::nullopt;
  return id;
}

std::string_view line_type(std::string_view line) {
  constexpr std::string_view kKey = ",\"type\":\"";
  const auto at = line.find(kKey);
  if (at == std::string_view::npos) return {};
  const auto start = at + kKey.size();
  const auto end = line.find('"', start);
  return end == std::string_view::npos ? std::string_view{} : line.substr(start, end - start);
}

std::optional<std::uint64_t> last_event_id(const fs::path& path, bool cut_torn_tail) {
  int fd = ::open(path.c_str(), (cut_torn_tail ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  std::optional<std::uint64_t> id;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::string tail = read_tail(fd, size, kTailBytes);
    const auto last_newline = tail.rfind('\n');
    if (last_newline + 1 != tail.size()) {  // torn (or npos: no whole line in the tail)
      const std::uint64_t keep = last_newline == std::string::npos ? size - tail.size() : size - tail.size() + last_newline + 1;
      if (cut_torn_tail && ::ftruncate(fd, static_cast<off_t>(keep)) == 0)
        log::get("events")->warn("event=event_log_torn_tail file=\"{}\" cut_bytes={}", path.string(), size - keep);
      tail.resize(last_newline == std::string::npos ? 0 : last_newline + 1);
    }
    if (!tail.empty()) {
      tail.pop_back();
      const auto start = tail.rfind('\n');
      id = line_id(std::string_view(tail).substr(start == std::string::npos ? 0 : start + 1));
    }
  }
  ::close(fd);
  return id;
}

EventLog::EventLog(EventLogOptions options, GlobalCounters* counters)
    : options_(std::move(options)), counters_(counters) {
  std::error_code ec;
  if (options_.file.has_parent_path()) fs::create_directories(options_.file.parent_path(), ec);
  std::lock_guard lock(mutex_);
  open_live();
  if (fd_ < 0) throw std::runtime_error("event log: cannot open " + options_.file.string() + ": " + errno_text());
}

EventLog::~EventLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::uint64_t EventLog::next_id() const {
  std::lock_guard lock(mutex_);
  return next_id_;
}

// Finds the live file's number and the next id (cutting a torn line), then opens it.
void EventLog::open_live() {
  const LogFiles files = list_log_files(options_.file);
  seq_ = files.live_seq;
  std::optional<std::uint64_t> last = last_event_id(options_.file, true);
  for (auto it = files.rotated.rbegin(); !last && it != files.rotated.rend(); ++it)
    last = last_event_id(rotated_file(options_.file, *it), false);
  next_id_ = std::max(next_id_, last ? *last + 1 : 1);
  // Recipient addresses: readable by the owner and its group, not by everyone.
  fd_ = ::open(options_.file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  struct stat st {};
  size_ = fd_ >= 0 && ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

bool EventLog::write_all(const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void EventLog::append(std::span<const EventRecord> events) noexcept {
  if (events.empty()) return;
  std::lock_guard lock(mutex_);
  try {
    if (fd_ < 0) open_live();  // a failed rotation: try again
    std::string batch;
    batch.reserve(events.size() * kLineGuess);
    std::uint64_t id = next_id_;
    for (const auto& e : events) {
      append_json_line(batch, e, id++);
      batch += '\n';
    }
    if (fd_ < 0 || !write_all(batch)) {
      const std::string why = errno_text();
      // A partial write would leave a torn line before the next batch: cut it.
      if (fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {}
      throw std::runtime_error(why);
    }
    next_id_ = id;
    size_ += batch.size();
    written_.fetch_add(events.size(), std::memory_order_relaxed);
    if (counters_) counters_->events_written.fetch_add(events.size(), std::memory_order_relaxed);
    if (size_ >= options_.max_bytes) rotate();
  } catch (const std::exception& e) {
    errors_.fetch_add(events.size(), std::memory_order_relaxed);
    if (counters_) counters_->event_log_errors.fetch_add(events.size(), std::memory_order_relaxed);
    log::get("events")->warn("event=event_log_write_failed file=\"{}\" events={} error=\"{}\"",
                             options_.file.string(), events.size(), e.what());
  }
}

// The live file becomes F.<seq>; rotated files beyond `keep` are deleted, oldest first.
void EventLog::rotate() {
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  fs::rename(options_.file, rotated_file(options_.file, seq_), ec);
  if (ec) log::get("events")->warn("event=event_log_rotate_failed file=\"{}\" error=\"{}\"", options_.file.string(), ec.message());
  LogFiles files = list_log_files(options_.file);
  const std::size_t excess = files.rotated.size() > options_.keep ? files.rotated.size() - options_.keep : 0;
  for (std::size_t i = 0; i < excess; ++i) fs::remove(rotated_file(options_.file, files.rotated[i]), ec);
  open_live();
}

}  // namespace kurier::engine
