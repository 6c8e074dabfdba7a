// Suppression lists as CSV (`kurier suppress import`, export's format): a header row;
// columns `address` (or `email`), `reason`, `time` (ISO 8601 UTC as export writes it, or
// milliseconds since the epoch). The address column is required; reason defaults to
// "import", time to now. Any thread. Every row is checked before anything is returned:
// a bad row is an InputError naming file, line and field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/store.h"

namespace kurier::engine {

// Reads the whole file (an entry is ~60 bytes: a million-row opt-out list is ~60 MB),
// addresses normalised. `name` is the file as the user gave it (for messages).
std::vector<queue::Suppression> read_suppression_csv(const std::filesystem::path& path, const std::string& name,
                                                     std::int64_t now_ms);

// Parses "2026-11-23T11:26:45Z", "2026-11-23T11:26:45.123Z" or "1700000000000" (ms).
std::optional<std::int64_t> parse_time_ms(std::string_view text);

}  // namespace kurier::engine
