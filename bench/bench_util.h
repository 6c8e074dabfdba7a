// Process measurements shared by the benchmarks: RSS from /proc/self/status, the peak
// reset, CPU time and the load average. Linux only; header-only (benchmarks are single
// files). A value that cannot be read is -1, so a result file shows it was unavailable.
#pragma once

#include <sys/resource.h>

#include <fstream>
#include <string>
#include <string_view>

namespace kurier::bench {

// A "Name:   123 kB" field of /proc/self/status in KiB, e.g. "VmHWM" (the kernel's
// high-water mark of the RSS) or "VmRSS" (the RSS now); -1 if absent.
inline long proc_status_kib(std::string_view field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 && line[field.size()] == ':')
      return std::stol(line.substr(field.size() + 1));
  return -1;
}

// Resets VmHWM to the current RSS, so a later peak covers only what follows.
inline void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

// User plus system CPU time of this process so far.
inline double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// The 1-minute load average: on a shared machine the wall-clock rate moves with it.
inline double load_average() {
  std::ifstream loadavg("/proc/loadavg");
  double one_minute = -1;
  if (!(loadavg >> one_minute)) return -1;
  return one_minute;
}

}  // namespace kurier::bench
