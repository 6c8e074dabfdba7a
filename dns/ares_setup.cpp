// c-ares channel set-up (dns/ares_setup.h). Runs on the caller's thread; bad options
// and c-ares failures throw std::runtime_error before any channel escapes.
#include "dns/ares_setup.h"

#include <limits>
#include <stdexcept>
#include <utility>

namespace kurier::dns::detail {
namespace {

void init_library_once() {
  // ares_library_init is not thread-safe; a function-local static is initialised exactly
  // once even when channels are created on several threads at the same time.
  static const int rc = ares_library_init(ARES_LIB_INIT_ALL);
  if (rc != ARES_SUCCESS) throw std::runtime_error(std::string("ares_library_init: ") + ares_strerror(rc));
}

}  // namespace

ares_channel open_channel(const ResolverOptions& options, ares_options settings, int mask, std::string& servers_text) {
  init_library_once();
  if (options.timeout.count() <= 0 || options.timeout.count() > std::numeric_limits<int>::max())
    throw std::runtime_error("dns: timeout must be positive");
  if (options.tries < 1) throw std::runtime_error("dns: tries must be at least 1");

  settings.timeout = static_cast<int>(options.timeout.count());  // ms with ARES_OPT_TIMEOUTMS
  settings.tries = options.tries;
  ares_channel channel = nullptr;
  if (int rc = ares_init_options(&channel, &settings, mask | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES); rc != ARES_SUCCESS)
    throw std::runtime_error(std::string("dns: ares_init_options: ") + ares_strerror(rc));

  if (options.servers.empty()) {
    servers_text = "system resolvers";
    return channel;
  }
  std::string csv;
  for (const auto& s : options.servers) {
    if (s.empty() || s.find(',') != std::string::npos) {
      ares_destroy(channel);
      throw std::runtime_error("dns: bad server \"" + s + "\"");
    }
    csv += (csv.empty() ? "" : ",") + s;
  }
  if (int rc = ares_set_servers_ports_csv(channel, csv.c_str()); rc != ARES_SUCCESS) {
    ares_destroy(channel);
    throw std::runtime_error("dns: bad servers \"" + csv + "\": " + ares_strerror(rc));
  }
  servers_text = std::move(csv);
  return channel;
}

}  // namespace kurier::dns::detail
