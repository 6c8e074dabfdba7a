// The kurier CLI commands (DESIGN.md), one function each. They print to
// stdout/stderr and return the process exit status: 0 success, 1 runtime failure
// (disk, network set-up), 2 bad input (the message names file, line and field).
// Main thread only.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace kurier::engine {

struct SendOptions {
  std::filesystem::path campaign;
  std::optional<std::filesystem::path> config;
  bool wait = false;      // keep retrying deferred recipients until all are final
  bool progress = true;   // progress line on a TTY
};
int send_command(const SendOptions& options);

struct ReportOptions {
  std::string campaign;   // campaign id (name)
  std::string format = "text";  // text, json, csv
  std::optional<std::filesystem::path> config;
};
int report_command(const ReportOptions& options);

struct StatusOptions {
  std::optional<std::string> campaign;
  bool json = false;
  std::optional<std::filesystem::path> config;
};
int status_command(const StatusOptions& options);

}  // namespace kurier::engine
