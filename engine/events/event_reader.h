// Reading the event log back (the webhooks; anything that follows the log): whole
// lines after a position, across rotation (event_log.h explains the files and ids).
// A position in a file deleted by rotation moves to the oldest file kept; the events
// skipped are counted from the gap in ids. Any thread (it only reads files); a
// missing or unreadable file reads as no lines, never an exception.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kurier::engine {

struct LogPosition {
  std::uint64_t seq = 0;      // the file's sequence number; 0 = the oldest file kept
  std::uint64_t offset = 0;   // bytes into that file: always at the start of a line
  std::uint64_t next_id = 0;  // the id expected next (0 = unknown): a jump means loss
  bool operator==(const LogPosition&) const = default;
};
std::string to_string(const LogPosition& position);  // JSON, for Store::put_control
std::optional<LogPosition> position_from_string(const std::string& text);

struct ReadBatch {
  std::vector<std::string> lines;  // whole lines without the line break, oldest first
  LogPosition end;                 // where the next read starts
  std::uint64_t lost = 0;          // events rotated away before they were read
};

// Up to `max_lines` whole lines after `from` (fewer at the end of the live file).
ReadBatch read_events(const std::filesystem::path& file, LogPosition from, std::size_t max_lines);

}  // namespace kurier::engine
