// One spdlog logger per component ("dns", "smtp", "queue", "engine", ...),
// created on first use, all writing to stderr. Thread-safe.
// Convention: key=value fields, always the queue id and the peer where known;
// nothing at info level inside per-message loops.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace kurier::log {

// Returns the logger for `component`, creating it (stderr, shared level) if needed.
std::shared_ptr<spdlog::logger> get(const std::string& component);

// Sets the level of every kurier logger, present and future: "trace" ... "off".
void set_level(const std::string& level);

}  // namespace kurier::log
