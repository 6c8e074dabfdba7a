// ISO 8601 times and CSV fields for output (see text_format.h). Pure; any thread.
#include "engine/core/text_format.h"

#include <ctime>

#include <fmt/format.h>

namespace kurier::engine {

std::string iso_time(std::int64_t ms, bool with_millis) {
  if (ms <= 0) return "";
  const auto t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return with_millis ? fmt::format("{}.{:03}Z", buf, ms % 1000) : fmt::format("{}Z", buf);
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace kurier::engine
