// kurier bounce ingest PATH... : reads stored bounce mail (.eml files, mbox files,
// Maildirs; engine/bounces/mail_files.h), parses each message (bounce/), matches its VERP token
// and applies it to the queue (engine/bounces/apply.h), then prints a summary.
// Exit 0 after applying; 2 for an unreadable path (named, nothing applied) or bad
// config; 1 when the queue cannot be opened, e.g. because `kurier serve` holds it.
// Main thread.
#pragma once

#include <filesystem>
#include <optional>
#include <vector>

namespace kurier::engine {

struct IngestOptions {
  std::vector<std::filesystem::path> paths;
  std::optional<std::filesystem::path> config;
  bool json = false;  // the summary as one JSON object instead of text
};
int bounce_ingest_command(const IngestOptions& options);

}  // namespace kurier::engine
