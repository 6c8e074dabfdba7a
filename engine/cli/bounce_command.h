// `kurier bounce classify FILE... [--config kurier.toml]`: parses each message
// (bounce/bounce.h) and prints one JSON line per recipient found, or one per message
// when it names none (docs/DESIGN.md "CLI"). Main thread; reads files only, never the queue.
// Returns the exit status: 0 done; bad input (an unreadable FILE, a bad kurier.toml or
// rules file) throws InputError naming the file, so the CLI exits 2.
#pragma once

#include <filesystem>
#include <optional>
#include <ostream>
#include <vector>

namespace kurier::engine {

struct BounceClassifyOptions {
  std::vector<std::filesystem::path> files;
  // kurier.toml: [verp] secret decodes VERP tokens (without it "verp" is null);
  // [bounce] rules names an extra rules file (relative to kurier.toml's directory).
  std::optional<std::filesystem::path> config;
};

int bounce_classify_command(const BounceClassifyOptions& options, std::ostream& out);

}  // namespace kurier::engine
