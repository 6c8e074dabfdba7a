// kurier suppress import|export|list|add|remove: the suppression list in the queue
// store (addresses that are never sent to again: hard bounces, complaints,
// unsubscribes, imported opt-out lists such as Robinson lists).
//
// CSV (import and export): a header row; columns `address` (or `email`), `reason`,
// `time` (ISO 8601 UTC as export writes it, or milliseconds since the epoch). Import
// needs the address column; reason defaults to "import", time to now. Every row is
// checked before anything is stored, then all rows go in one synced batch: a bad row
// is an InputError naming file, line and field and imports nothing. Addresses
// already on the list keep their entry (a bounce's reason is not overwritten).
// Main thread; exit 0 / 1 (store) / 2 (bad input).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace kurier::engine {

struct SuppressOptions {
  std::string action;                            // import, export, list, add, remove
  std::filesystem::path file;                    // import
  std::string address;                           // add, remove
  std::string reason = "manual";                 // add
  std::string format = "csv";                    // export: csv or json (JSON lines)
  std::optional<std::filesystem::path> config;
};
int suppress_command(const SuppressOptions& options);

}  // namespace kurier::engine
