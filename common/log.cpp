// Component loggers over spdlog; any thread. Failing to create a logger is a bug
// (spdlog throws), so it is not caught here.
#include "common/log.h"

#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>

namespace kurier::log {
namespace {
std::mutex mutex;
spdlog::level::level_enum current_level = spdlog::level::warn;
}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& component) {
  std::lock_guard lock(mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = spdlog::stderr_logger_mt(component);
  logger->set_level(current_level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  return logger;
}

void set_level(const std::string& level) {
  std::lock_guard lock(mutex);
  current_level = spdlog::level::from_str(level);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(current_level); });
}

}  // namespace kurier::log
