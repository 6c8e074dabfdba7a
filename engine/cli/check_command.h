// `kurier check [ADDRESS...|--file FILE] [--json] [--config kurier.toml] [--no-dns]`:
// list-hygiene verdicts (engine/intake/hygiene/hygiene.h) for addresses, without queueing anything.
// Main thread. Returns the exit status: 0 done (whatever the verdicts), 2 bad input
// (InputError thrown to the caller, like the other commands).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kurier::engine {

struct CheckOptions {
  std::vector<std::string> addresses;
  // One address a line ('#' comments and blank lines skipped), or a CSV file whose
  // header row has an "email" column (recognised by a ',' in the first line or a
  // first line that is just "email").
  std::optional<std::filesystem::path> file;
  bool json = false;  // one JSON object a line, in input order
  bool dns = true;    // false: no no_mail_host verdicts
  std::optional<std::filesystem::path> config;
};

// Duplicates are judged across the whole input. The queue's suppression list is
// checked when the queue exists and is not locked by a running kurier (then a note on
// stderr says it was skipped).
int check_command(const CheckOptions& options);

}  // namespace kurier::engine
