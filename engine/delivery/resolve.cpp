// MX lookups as coroutines (engine/delivery/resolve.h). Worker thread.
#include "engine/delivery/resolve.h"

#include <memory>

#include "common/asio.h"

namespace kurier::engine {

asio::awaitable<dns::MxResult> resolve_mx(dns::MxResolver& resolver, std::string domain) {
  auto initiate = [&resolver, domain](auto handler) {
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    resolver.resolve_mx(domain, [shared](dns::MxResult result) { (*shared)(std::move(result)); });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(dns::MxResult)>(std::move(initiate),
                                                                                              asio::use_awaitable);
}

asio::awaitable<std::vector<std::string>> host_addresses(dns::MxResolver& resolver, std::string host) {
  dns::MxResult found = co_await resolve_mx(resolver, std::move(host));
  if (found.status != dns::Status::ok || !found.implicit_mx || found.hosts.empty())
    co_return std::vector<std::string>{};
  co_return found.hosts.front().addresses;
}

}  // namespace kurier::engine
