// The engine's one clock: milliseconds since the Unix epoch. Components that decide by
// time (delivery, shaping, intake, bounces) take a Clock from their caller, so tests
// drive time without sleeping; production code passes system_now_ms. Any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace kurier::engine {

using Clock = std::function<std::int64_t()>;  // milliseconds since the Unix epoch

inline std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace kurier::engine
