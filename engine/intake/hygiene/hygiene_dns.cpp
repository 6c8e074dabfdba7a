// The no_mail_host lookup with dns/: a private io_context and c-ares resolver, driven
// on the caller's thread inside lookup(). Temporary failures (SERVFAIL, timeouts)
// come back as MailHost::unknown, never as a verdict.
#include "engine/intake/hygiene/hygiene_dns.h"

#include "common/asio.h"
#include "dns/mx_resolver.h"
#include "engine/core/config.h"

namespace kurier::engine {
namespace {

MailHost mail_host_of(dns::Status status) {
  switch (status) {
    case dns::Status::ok: return MailHost::exists;
    case dns::Status::null_mx:
    case dns::Status::nxdomain:
    case dns::Status::no_mail_host: return MailHost::none;
    case dns::Status::temporary: return MailHost::unknown;
  }
  return MailHost::unknown;
}

class DnsMailHostLookup final : public MailHostLookup {
 public:
  DnsMailHostLookup(std::vector<std::string> servers, std::chrono::milliseconds timeout) {
    dns::ResolverOptions options;
    options.servers = std::move(servers);
    options.timeout = timeout;
    resolver_ = dns::make_cares_resolver(io_, options);
  }

  std::vector<MailHost> lookup(const std::vector<std::string>& domains) override {
    std::vector<MailHost> out(domains.size(), MailHost::unknown);
    std::size_t next = 0, in_flight = 0;
    // Starts queries up to the limit; each answer starts the next one.
    std::function<void()> fill = [&] {
      while (in_flight < kMaxMailHostQueriesInFlight && next < domains.size()) {
        const std::size_t index = next++;
        ++in_flight;
        resolver_->resolve_mx(domains[index], [&, index](dns::MxResult result) {
          out[index] = mail_host_of(result.status);
          --in_flight;
          fill();
        });
      }
    };
    fill();
    io_.restart();
    while (in_flight > 0)
      if (io_.run_one() == 0) break;  // nothing left to wait for (cannot happen with queries in flight)
    return out;
  }

 private:
  asio::io_context io_;
  std::unique_ptr<dns::MxResolver> resolver_;
};

}  // namespace

std::unique_ptr<MailHostLookup> make_dns_mail_host_lookup(std::vector<std::string> servers,
                                                          std::chrono::milliseconds timeout) {
  return std::make_unique<DnsMailHostLookup>(std::move(servers), timeout);
}

std::unique_ptr<MailHostLookup> make_no_mail_host_lookup(const Hygiene& hygiene, const Config& config) {
  if (hygiene.options()[Verdict::no_mail_host] == Policy::off) return nullptr;
  return make_dns_mail_host_lookup(config.dns.servers, config.dns.timeout);
}

}  // namespace kurier::engine
