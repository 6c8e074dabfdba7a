// Reads whole lines of the event log after a position (contract in event_reader.h).
// Caller's thread; file errors read as "no more lines" and are logged.
#include "engine/events/event_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "engine/events/event_log.h"

namespace kurier::engine {
namespace fs = std::filesystem;

namespace {

// Bytes read per pread(): a few hundred events.
constexpr std::size_t kChunkBytes = 256 << 10;
// Files visited in one read at most: a reader far behind catches up over several calls.
constexpr int kMaxFileHops = 8;

// Appends whole lines of `fd` from position.offset until `max_lines` or the end of
// the file; advances the position past each line and counts gaps in ids as lost.
void read_lines(int fd, std::uint64_t size, std::size_t max_lines, ReadBatch& out) {
  LogPosition& p = out.end;
  std::string pending;
  std::uint64_t read_at = p.offset;
  while (out.lines.size() < max_lines && read_at < size) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkBytes, size - read_at));
    const std::size_t base = pending.size();
    pending.resize(base + want);
    ssize_t n = ::pread(fd, pending.data() + base, want, static_cast<off_t>(read_at));
    if (n < 0 && errno == EINTR) { pending.resize(base); continue; }
    if (n <= 0) { pending.resize(base); break; }
    pending.resize(base + static_cast<std::size_t>(n));
    read_at += static_cast<std::uint64_t>(n);
    std::size_t start = 0;
    for (std::size_t nl; out.lines.size() < max_lines && (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string line = pending.substr(start, nl - start);
      if (auto id = line_id(line)) {
        if (p.next_id != 0 && *id > p.next_id) out.lost += *id - p.next_id;
        p.next_id = *id + 1;
      }
      p.offset += line.size() + 1;
      out.lines.push_back(std::move(line));
    }
    pending.erase(0, start);
  }
}

// Moves a position that names no readable file to the oldest file kept.
void settle(LogPosition& p, const LogFiles& files, const fs::path& file) {
  const bool kept = p.seq == files.live_seq || std::binary_search(files.rotated.begin(), files.rotated.end(), p.seq);
  if (p.seq != 0 && kept) return;
  if (p.seq != 0)
    log::get("events")->warn("event=event_log_position_lost file=\"{}\" seq={} oldest={}", file.string(), p.seq,
                             files.oldest());
  p.seq = files.oldest();
  p.offset = 0;
}

}  // namespace

std::string to_string(const LogPosition& p) {
  return nlohmann::json{{"seq", p.seq}, {"offset", p.offset}, {"next_id", p.next_id}}.dump();
}

std::optional<LogPosition> position_from_string(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  LogPosition p;
  try {
    p.seq = j.at("seq").get<std::uint64_t>();
    p.offset = j.at("offset").get<std::uint64_t>();
    p.next_id = j.value("next_id", std::uint64_t{0});
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return p;
}

ReadBatch read_events(const fs::path& file, LogPosition from, std::size_t max_lines) {
  ReadBatch out;
  out.end = from;
  LogPosition& p = out.end;
  for (int hop = 0; hop < kMaxFileHops && out.lines.size() < max_lines; ++hop) {
    const LogFiles files = list_log_files(file);
    settle(p, files, file);
    const bool live = p.seq == files.live_seq;
    const int fd = ::open((live ? file : rotated_file(file, p.seq)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && live) return out;  // no events yet
    if (fd < 0) continue;            // deleted just now: settle() moves on
    // Rotated between the listing and the open: what we opened may be the next file.
    if (live && fs::exists(rotated_file(file, p.seq))) {
      ::close(fd);
      continue;
    }
    struct stat st {};
    const std::uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    if (p.offset > size) {  // the machine crashed before the page cache reached the disk
      log::get("events")->warn("event=event_log_position_beyond_end file=\"{}\" seq={} offset={} size={}",
                               file.string(), p.seq, p.offset, size);
      p.offset = size;
    }
    read_lines(fd, size, max_lines, out);
    ::close(fd);
    if (live || out.lines.size() >= max_lines) return out;
    p = {p.seq + 1, 0, p.next_id};  // a rotated file read to its end
  }
  return out;
}

}  // namespace kurier::engine
