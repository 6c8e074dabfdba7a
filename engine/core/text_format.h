// Small formatting helpers for the text, CSV and JSON that people read: the CLI
// commands' output and the ops API. Pure functions; any thread; they do not fail.
#pragma once

#include <cstdint>
#include <string>

namespace kurier::engine {

// Milliseconds since the epoch as UTC ISO 8601: "2026-11-23T14:49:18.072Z", or without
// the milliseconds "2026-11-23T14:49:18Z". 0 or less (never happened) gives "".
std::string iso_time(std::int64_t ms, bool with_millis = true);

// One CSV output field (RFC 4180): quoted, with "" for a quote, when it holds a comma,
// a quote or a line break; as is otherwise.
std::string csv_field(const std::string& value);

}  // namespace kurier::engine
