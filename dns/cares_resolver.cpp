// MX resolution with c-ares on an Asio io_context, Envoy-style: the socket-state callback
// drives descriptor waits, a timer drives c-ares' timeouts. Runs on the io_context's thread.
// DNS failures become MxResult statuses; only construction throws (bad options, c-ares init).
#include <ares.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/asio.h"
#include "common/log.h"
#include "dns/ares_setup.h"
#include "dns/message.h"
#include "dns/mx_resolver.h"

namespace kurier::dns {
namespace {

using Clock = std::chrono::steady_clock;

// Postfix tries at most 5 addresses per delivery (smtp_mx_address_limit); a domain that
// publishes dozens of MX records should not make us fire dozens of A/AAAA queries.
constexpr std::size_t kMaxMxHosts = 10;
// Bounds memory when many distinct domains are looked up; expired entries are swept
// when the cache reaches this size, and everything is dropped if that frees nothing.
constexpr std::size_t kMaxCacheEntries = 100000;
// RFC 1035 §2.3.4 limits; longer names cannot exist, so they are answered without a query.
constexpr std::size_t kMaxNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

bool valid_domain(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (++label > kMaxLabelLength || static_cast<unsigned char>(c) <= ' ') {
      return false;
    }
  }
  return label != 0;
}

// Names of the c-ares outcomes that end a query without a usable answer.
std::string describe(int status) {
  switch (status) {
    case ARES_ESERVFAIL:
      return "SERVFAIL";
    case ARES_EREFUSED:
      return "REFUSED";
    case ARES_EFORMERR:
      return "FORMERR";
    case ARES_ENOTIMP:
      return "NOTIMP";
    case ARES_ETIMEOUT:
      return "timeout";
    case ARES_ECONNREFUSED:
      return "connection refused";
    case ARES_EBADRESP:
      return "malformed answer";
    default:
      return ares_strerror(status);
  }
}

// NOERROR and NXDOMAIN carry an answer; anything else (YXDOMAIN, NOTAUTH, ...) from a
// recursive server means it could not resolve the name.
bool usable_rcode(std::uint16_t rcode) { return rcode == wire::kRcodeNoError || rcode == wire::kRcodeNxDomain; }

// Random order among equal preferences spreads load over equal MX hosts (RFC 5321 §5.1).
template <typename Rng>
void shuffle_equal_preferences(std::vector<MxHost>& hosts, Rng& rng) {
  auto first = hosts.begin();
  while (first != hosts.end()) {
    auto last = std::find_if(first, hosts.end(), [&](const MxHost& h) { return h.preference != first->preference; });
    std::shuffle(first, last, rng);
    first = last;
  }
}

enum class QueryKind { mx, host_a, host_aaaa };

struct HostState {
  MxHost host;
  std::vector<std::string> v4;
  std::vector<std::string> v6;
  bool temporary_failure = false;  // an address query failed for a reason other than "no such data"
  std::string failure;
};

// One resolution in flight; every resolve_mx for the same domain joins it.
struct Lookup {
  std::string domain;
  std::vector<MxResolver::Callback> waiters;
  std::vector<HostState> hosts;
  bool implicit_mx = false;
  int outstanding = 0;                                            // address queries not yet answered
  std::uint32_t ttl = std::numeric_limits<std::uint32_t>::max();  // smallest TTL involved
  bool finished = false;
};

class CaresResolver;

struct QueryContext {
  CaresResolver* resolver;
  std::shared_ptr<Lookup> lookup;
  QueryKind kind;
  std::size_t host = 0;  // index into lookup->hosts for host_a / host_aaaa
};

// A c-ares socket watched by the loop. The descriptor never owns the fd: c-ares closes
// its sockets itself, so we release() before it does (after its state callback says so).
struct SocketWatch {
  SocketWatch(asio::io_context& io, ares_socket_t socket) : descriptor(io, socket), fd(socket) {}
  asio::posix::stream_descriptor descriptor;
  ares_socket_t fd;
  bool want_read = false;
  bool want_write = false;
  bool read_armed = false;
  bool write_armed = false;
  bool closed = false;
};

struct CacheEntry {
  MxResult result;
  Clock::time_point expires;
};

class CaresResolver final : public MxResolver {
 public:
  CaresResolver(asio::io_context& io, ResolverOptions options)
      : io_(io), options_(std::move(options)), timer_(io), rng_(std::random_device{}()), log_(log::get("dns")) {
    ares_options opts{};
    // NOCHECKRESP: c-ares 1.18 answers a SERVFAIL or REFUSED response with
    // ARES_ECONNREFUSED (its initial error_status is never updated), which would hide
    // the server's verdict. With the flag the response reaches us and is classified by
    // its rcode; the cost is that such a response is not retried at the next server
    // (timeouts and unreachable servers still are).
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP;
    opts.sock_state_cb = &CaresResolver::on_socket_state;
    opts.sock_state_cb_data = this;
    channel_ = detail::open_channel(options_, opts, ARES_OPT_FLAGS | ARES_OPT_SOCK_STATE_CB, servers_text_);
  }

  CaresResolver(const CaresResolver&) = delete;
  CaresResolver& operator=(const CaresResolver&) = delete;

  ~CaresResolver() override {
    // ares_destroy calls every outstanding query back with ARES_EDESTRUCTION (ignored in
    // on_answer) and reports each socket closed (releasing our descriptors) before
    // closing it. Handlers already queued on the loop see alive_ expired and do nothing.
    alive_.reset();
    ares_destroy(channel_);
    for (auto& [fd, watch] : sockets_) close_watch(*watch);
    sockets_.clear();
    timer_.cancel();
  }

  void resolve_mx(const std::string& domain_in, Callback done) override {
    std::string domain = wire::normalize_name(domain_in);
    if (!valid_domain(domain)) {
      // Such a name can never exist, so the failure is permanent.
      MxResult result;
      result.status = Status::nxdomain;
      result.detail = "invalid domain name \"" + domain_in + "\"";
      deliver(std::move(done), std::move(result));
      return;
    }
    if (options_.cache) {
      if (auto it = cache_.find(domain); it != cache_.end()) {
        if (it->second.expires > Clock::now()) {
          deliver(std::move(done), it->second.result);
          return;
        }
        cache_.erase(it);
      }
    }
    if (auto it = lookups_.find(domain); it != lookups_.end()) {
      it->second->waiters.push_back(std::move(done));
      return;
    }
    auto lookup = std::make_shared<Lookup>();
    lookup->domain = domain;
    lookup->waiters.push_back(std::move(done));
    lookups_.emplace(domain, lookup);
    log_->debug("mx lookup start domain={} servers={}", domain, servers_text_);
    query(lookup, QueryKind::mx, domain, 0);
    update_timer();
  }

 private:
  // --- queries and answers ---------------------------------------------------------

  void query(const std::shared_ptr<Lookup>& lookup, QueryKind kind, const std::string& name, std::size_t host) {
    const int type = kind == QueryKind::mx ? wire::kTypeMx : kind == QueryKind::host_a ? wire::kTypeA : wire::kTypeAaaa;
    auto* context = new QueryContext{this, lookup, kind, host};
    // c-ares calls on_answer exactly once, possibly inline (e.g. for a name it cannot
    // encode), which owns and frees the context.
    ares_query(channel_, name.c_str(), wire::kClassIn, type, &CaresResolver::on_answer, context);
  }

  static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    std::unique_ptr<QueryContext> context(static_cast<QueryContext*>(arg));
    // The resolver is being destroyed (or the query cancelled): nobody may be called back.
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
    const std::size_t size = abuf != nullptr && alen > 0 ? static_cast<std::size_t>(alen) : 0;
    if (context->kind == QueryKind::mx)
      context->resolver->on_mx_answer(context->lookup, status, abuf, size);
    else
      context->resolver->on_host_answer(context->lookup, context->kind, context->host, status, abuf, size);
  }

  void on_mx_answer(const std::shared_ptr<Lookup>& lookup, int status, const unsigned char* abuf, std::size_t size) {
    const std::string& domain = lookup->domain;
    if (status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND)
      return fail(lookup, Status::temporary, describe(status) + " for MX " + domain + " from " + servers_text_);

    wire::Message message;
    std::string error;
    if (!wire::parse_message(abuf, size, message, error))
      return fail(lookup, Status::temporary, "malformed MX answer for " + domain + ": " + error);
    if (message.truncated)  // c-ares retries truncated answers over TCP; this one still was
      return fail(lookup, Status::temporary, "truncated MX answer for " + domain);
    if (!usable_rcode(message.rcode))  // ares_query reports rcodes it does not know as success
      return fail(lookup, Status::temporary, "rcode " + std::to_string(message.rcode) + " for MX " + domain);

    std::uint32_t negative = 0;
    const bool has_negative = wire::negative_ttl(message, negative);
    if (status == ARES_ENOTFOUND) {
      lookup->ttl = has_negative ? negative : 0;
      return fail(lookup, Status::nxdomain, "NXDOMAIN for " + domain);
    }

    std::string canonical;
    std::vector<std::string> chain;
    if (!wire::follow_cnames(message.answers, domain, canonical, chain, lookup->ttl, error))
      return fail(lookup, Status::temporary, error);

    std::vector<MxHost> exchanges;
    bool saw_root = false;
    for (const auto& rec : message.answers) {
      if (rec.type != wire::kTypeMx || rec.name != canonical) continue;
      lookup->ttl = std::min(lookup->ttl, rec.ttl);
      if (rec.target.empty()) {
        saw_root = true;
        continue;
      }
      if (std::none_of(exchanges.begin(), exchanges.end(), [&](const MxHost& h) { return h.name == rec.target; }))
        exchanges.push_back(MxHost{rec.target, rec.preference, {}});
    }

    if (exchanges.empty() && saw_root) return fail(lookup, Status::null_mx, "null MX (RFC 7505) for " + domain);
    if (saw_root)  // RFC 7505 §3: a null MX must be alone; use the real hosts and note it
      log_->debug("mx lookup domain={} null MX mixed with other MX records, ignoring it", domain);

    if (exchanges.empty()) {
      // NODATA: RFC 5321 §5.1 implicit MX, the domain itself with its A/AAAA records.
      if (has_negative) lookup->ttl = std::min(lookup->ttl, negative);
      lookup->implicit_mx = true;
      lookup->hosts.push_back(HostState{MxHost{domain, 0, {}}, {}, {}, false, {}});
      lookup->outstanding = 2;
      query(lookup, QueryKind::host_a, domain, 0);
      query(lookup, QueryKind::host_aaaa, domain, 0);
      return;
    }

    std::stable_sort(exchanges.begin(), exchanges.end(),
                     [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
    shuffle_equal_preferences(exchanges, rng_);
    if (exchanges.size() > kMaxMxHosts) exchanges.resize(kMaxMxHosts);

    // Addresses from the additional section save a round trip. A server that includes
    // some address of a host includes all it has (BIND, dnsmasq, Unbound do), so a host
    // present there is complete; hosts absent from it are queried.
    std::vector<std::size_t> to_query;
    for (auto& exchange : exchanges) {
      HostState state{std::move(exchange), {}, {}, false, {}};
      bool found = false;
      for (const auto& rec : message.additional) {
        if (rec.name != state.host.name || (rec.type != wire::kTypeA && rec.type != wire::kTypeAaaa)) continue;
        (rec.type == wire::kTypeA ? state.v4 : state.v6).push_back(rec.address);
        lookup->ttl = std::min(lookup->ttl, rec.ttl);
        found = true;
      }
      if (!found) to_query.push_back(lookup->hosts.size());
      lookup->hosts.push_back(std::move(state));
    }
    if (to_query.empty()) return complete(lookup);
    // Count every query before issuing any: an inline callback must not complete early.
    lookup->outstanding = static_cast<int>(to_query.size() * 2);
    for (std::size_t index : to_query) {
      const std::string name = lookup->hosts[index].host.name;
      query(lookup, QueryKind::host_a, name, index);
      query(lookup, QueryKind::host_aaaa, name, index);
    }
  }

  void on_host_answer(const std::shared_ptr<Lookup>& lookup, QueryKind kind, std::size_t index, int status,
                      const unsigned char* abuf, std::size_t size) {
    if (lookup->finished) return;
    HostState& state = lookup->hosts[index];
    const std::uint16_t type = kind == QueryKind::host_a ? wire::kTypeA : wire::kTypeAaaa;
    const char* type_name = kind == QueryKind::host_a ? "A" : "AAAA";
    auto& addresses = kind == QueryKind::host_a ? state.v4 : state.v6;

    if (status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND) {
      wire::Message message;
      std::string error;
      std::string canonical;
      std::vector<std::string> chain;
      std::uint32_t ttl = std::numeric_limits<std::uint32_t>::max();
      if (!wire::parse_message(abuf, size, message, error)) {
        note_host_failure(state,
                          std::string("malformed ") + type_name + " answer for " + state.host.name + ": " + error);
      } else if (message.truncated) {
        note_host_failure(state, std::string("truncated ") + type_name + " answer for " + state.host.name);
      } else if (!usable_rcode(message.rcode)) {
        note_host_failure(state,
                          "rcode " + std::to_string(message.rcode) + " for " + type_name + " " + state.host.name);
      } else if (!wire::follow_cnames(message.answers, state.host.name, canonical, chain, ttl, error)) {
        note_host_failure(state, error);
      } else if (status == ARES_SUCCESS) {
        for (const auto& rec : message.answers) {
          if (rec.type != type || std::find(chain.begin(), chain.end(), rec.name) == chain.end()) continue;
          addresses.push_back(rec.address);
          ttl = std::min(ttl, rec.ttl);
        }
        if (!addresses.empty()) lookup->ttl = std::min(lookup->ttl, ttl);
      } else if (std::uint32_t negative = 0; lookup->implicit_mx && wire::negative_ttl(message, negative)) {
        lookup->ttl = std::min(lookup->ttl, negative);  // part of a no_mail_host verdict
      }
    } else {
      note_host_failure(state,
                        describe(status) + " for " + type_name + " " + state.host.name + " from " + servers_text_);
    }
    if (--lookup->outstanding == 0) complete(lookup);
  }

  static void note_host_failure(HostState& state, std::string why) {
    state.temporary_failure = true;
    if (state.failure.empty()) state.failure = std::move(why);
  }

  // All address queries are answered: decide the outcome.
  void complete(const std::shared_ptr<Lookup>& lookup) {
    MxResult result;
    bool any_address = false;
    bool any_temporary = false;
    std::string first_failure;
    for (auto& state : lookup->hosts) {
      state.host.addresses = std::move(state.v4);  // IPv4 first: still the more reliable path for mail
      state.host.addresses.insert(state.host.addresses.end(), state.v6.begin(), state.v6.end());
      any_address = any_address || !state.host.addresses.empty();
      any_temporary = any_temporary || state.temporary_failure;
      if (first_failure.empty()) first_failure = state.failure;
      result.hosts.push_back(std::move(state.host));
    }
    if (lookup->implicit_mx) {
      if (!any_address) {
        if (any_temporary) return fail(lookup, Status::temporary, first_failure);
        return fail(lookup, Status::no_mail_host, "no MX and no A/AAAA for " + lookup->domain);
      }
      result.implicit_mx = true;
    } else if (!any_address) {
      return fail(lookup, Status::temporary,
                  "no MX host of " + lookup->domain + " has an address" +
                      (first_failure.empty() ? std::string() : " (" + first_failure + ")"));
    }
    result.status = Status::ok;
    // A host whose lookup failed would stay address-less for the whole TTL otherwise.
    if (any_temporary) {
      lookup->ttl =
          std::min<std::uint32_t>(lookup->ttl, static_cast<std::uint32_t>(ResolverOptions::kFailureCacheTtl.count()));
      result.detail = first_failure;
    }
    finish(lookup, std::move(result));
  }

  void fail(const std::shared_ptr<Lookup>& lookup, Status status, std::string detail) {
    MxResult result;
    result.status = status;
    result.detail = std::move(detail);
    finish(lookup, std::move(result));
  }

  void finish(const std::shared_ptr<Lookup>& lookup, MxResult result) {
    lookup->finished = true;
    if (auto it = lookups_.find(lookup->domain); it != lookups_.end() && it->second == lookup) lookups_.erase(it);

    std::chrono::seconds ttl = ResolverOptions::kFailureCacheTtl;
    if (result.status != Status::temporary) {
      // No TTL at all (a negative answer without SOA) means "do not cache" (RFC 2308 §5):
      // the minimum, which still spares the server a burst of identical queries.
      const std::uint32_t seconds = lookup->ttl == std::numeric_limits<std::uint32_t>::max() ? 0 : lookup->ttl;
      ttl = std::clamp(std::chrono::seconds(seconds), ResolverOptions::kMinCacheTtl, ResolverOptions::kMaxCacheTtl);
    }
    log_->debug("mx lookup done domain={} status={} hosts={} implicit={} cache_ttl={}s detail=\"{}\"", lookup->domain,
                to_string(result.status), result.hosts.size(), result.implicit_mx, ttl.count(), result.detail);
    if (options_.cache) {
      if (cache_.size() >= kMaxCacheEntries) sweep_cache();
      cache_[lookup->domain] = CacheEntry{result, Clock::now() + ttl};
    }
    for (auto& waiter : lookup->waiters) deliver(std::move(waiter), result);
    lookup->waiters.clear();
  }

  void sweep_cache() {
    const auto now = Clock::now();
    std::erase_if(cache_, [&](const auto& entry) { return entry.second.expires <= now; });
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  }

  // Callbacks always go through the loop: never inline from resolve_mx (callers may hold
  // locks or iterate), never after the resolver is gone.
  void deliver(Callback done, MxResult result) {
    shuffle_equal_preferences(result.hosts, rng_);
    asio::post(
        io_, [alive = std::weak_ptr<const bool>(alive_), done = std::move(done), result = std::move(result)]() mutable {
          if (alive.expired()) return;
          done(std::move(result));
        });
  }

  // --- the c-ares <-> Asio bridge -----------------------------------------------------

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<CaresResolver*>(data)->socket_state(fd, readable != 0, writable != 0);
  }

  void socket_state(ares_socket_t fd, bool readable, bool writable) {
    auto it = sockets_.find(fd);
    if (!readable && !writable) {  // c-ares is about to close fd
      if (it != sockets_.end()) {
        close_watch(*it->second);
        sockets_.erase(it);
      }
      return;
    }
    if (it == sockets_.end()) {
      try {
        it = sockets_.emplace(fd, std::make_shared<SocketWatch>(io_, fd)).first;
      } catch (const boost::system::system_error& e) {
        // Without a registration the query cannot be answered; c-ares times it out.
        log_->error("dns socket registration failed fd={} error=\"{}\"", fd, e.what());
        return;
      }
    }
    it->second->want_read = readable;
    it->second->want_write = writable;
    arm(it->second);
  }

  static void close_watch(SocketWatch& watch) {
    watch.closed = true;
    error_code ignored;
    watch.descriptor.cancel(ignored);
    (void)watch.descriptor.release();  // c-ares owns the fd and closes it
  }

  void arm(const std::shared_ptr<SocketWatch>& watch) {
    if (watch->want_read && !watch->read_armed) wait(watch, true);
    if (watch->want_write && !watch->write_armed) wait(watch, false);
  }

  void wait(const std::shared_ptr<SocketWatch>& watch, bool for_read) {
    (for_read ? watch->read_armed : watch->write_armed) = true;
    auto handler = [this, alive = std::weak_ptr<const bool>(alive_), watch, for_read](error_code ec) {
      if (alive.expired() || watch->closed) return;
      (for_read ? watch->read_armed : watch->write_armed) = false;
      if (ec == asio::error::operation_aborted) return;
      if (for_read ? watch->want_read : watch->want_write)
        ares_process_fd(channel_, for_read ? watch->fd : ARES_SOCKET_BAD, for_read ? ARES_SOCKET_BAD : watch->fd);
      // After an error the wait would fail again at once; c-ares has seen the socket's
      // error while processing it, and its timeout covers anything left.
      if (ec) log_->warn("dns socket wait failed fd={} error=\"{}\"", watch->fd, ec.message());
      if (!ec && !watch->closed) arm(watch);
      update_timer();
    };
    // Asio's epoll reactor is edge-triggered and async_wait never checks readiness
    // speculatively: readiness that arrived while no wait was pending (a second UDP
    // answer, the rest of a TCP answer) would be missed. Checking with poll() first
    // gives level-triggered behaviour.
    pollfd probe{watch->fd, static_cast<short>(for_read ? POLLIN : POLLOUT), 0};
    if (::poll(&probe, 1, 0) > 0) {
      asio::post(io_, [handler = std::move(handler)]() mutable { handler(error_code{}); });
      return;
    }
    watch->descriptor.async_wait(
        for_read ? asio::posix::stream_descriptor::wait_read : asio::posix::stream_descriptor::wait_write,
        std::move(handler));
  }

  // Re-arms the timer for c-ares' next timeout (retransmission or giving up).
  void update_timer() {
    timeval tv{};
    if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
      timer_.cancel();
      return;
    }
    // Rounded up to a whole millisecond: a 0 ms timer would spin until c-ares' deadline.
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(tv.tv_sec) +
                                                                       std::chrono::microseconds(tv.tv_usec)) +
                 std::chrono::milliseconds(1);
    timer_.expires_after(delay);
    timer_.async_wait([this, alive = std::weak_ptr<const bool>(alive_)](error_code ec) {
      if (alive.expired() || ec == asio::error::operation_aborted) return;
      ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      update_timer();
    });
  }

  asio::io_context& io_;
  ResolverOptions options_;
  std::string servers_text_;  // for details and logs
  ares_channel channel_ = nullptr;
  asio::steady_timer timer_;
  std::unordered_map<ares_socket_t, std::shared_ptr<SocketWatch>> sockets_;
  std::unordered_map<std::string, std::shared_ptr<Lookup>> lookups_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::mt19937 rng_;
  std::shared_ptr<spdlog::logger> log_;
  // Handlers on the loop hold a weak_ptr to this token; once it is gone they return
  // without touching the resolver, whose memory may already be freed.
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

}  // namespace

std::unique_ptr<MxResolver> make_cares_resolver(asio::io_context& io, ResolverOptions options) {
  return std::make_unique<CaresResolver>(io, std::move(options));
}

}  // namespace kurier::dns
