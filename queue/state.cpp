// Recipient state and event names as used in reports, the CLI and JSON. Any thread.
#include "queue/store.h"

#include <array>

namespace kurier::queue {
namespace {
constexpr std::array<const char*, 7> kStateNames = {"queued",  "delivered",  "deferred", "bounced",
                                                    "expired", "suppressed", "cancelled"};
}

const char* to_string(State state) {
  auto index = static_cast<std::size_t>(state);
  return index < kStateNames.size() ? kStateNames[index] : "unknown";
}

std::optional<State> state_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i)
    if (name == kStateNames[i]) return static_cast<State>(i);
  return std::nullopt;
}

namespace {
constexpr std::array<const char*, 6> kEventNames = {"", "late_bounce", "complaint", "unsubscribe", "autoreply",
                                                    "delay"};
}

const char* to_string(EventKind kind) {
  auto index = static_cast<std::size_t>(kind);
  return index > 0 && index < kEventNames.size() ? kEventNames[index] : "unknown";
}

}  // namespace kurier::queue
