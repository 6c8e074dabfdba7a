// MTA-STS (RFC 8461): record and policy parsing, the HTTPS policy fetch (Beast over
// OpenSSL) and the per-domain policy cache. lookup() runs on a delivery worker's loop;
// the blocking TXT query goes to this component's own thread pool. Every failure ends
// as a StsLookup value with a reason; nothing is thrown to the caller.
#include "engine/delivery/mta_sts.h"

// g++ 12 false positive on Asio 1.74's awaitable frames (see smtp/client.cpp).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>

#include "common/asio.h"
#include "common/log.h"
#include "common/text.h"
#include "dns/txt_lookup.h"
#include "smtp/tls_trust.h"

namespace kurier::engine {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;

// RFC 8461 §3.2: max_age is at most 31557600 s (about a year).
constexpr std::int64_t kMaxAgeLimit = 31'557'600;
// How long a TXT answer is trusted before the next session asks again. RFC 8461 §5.1
// has senders check the record to notice a new id; asking once per session would add
// a DNS round trip to every connection of a busy domain for nothing.
constexpr std::chrono::seconds kTxtRecheck{60};
// Domains remembered; beyond this, those without a policy are swept out (memory stays
// bounded with millions of recipient domains; policies themselves are kept).
constexpr std::size_t kMaxCachedDomains = 100'000;
// Response header bytes accepted from a policy host; real ones are a few hundred.
constexpr std::uint32_t kMaxHeaderBytes = 8 * 1024;
// Threads for blocking TXT queries: each waits at most dns timeout x tries, and a
// handful of new domains at once is the common burst.
constexpr std::size_t kTxtThreads = 2;

const std::shared_ptr<spdlog::logger>& logger() {
  static const std::shared_ptr<spdlog::logger> instance = log::get("mta-sts");
  return instance;
}

// Not text::trim: only blanks (and the CR of a CRLF line at the end) are padding
// here; a leading CR, FF or VT stays and makes the key or value invalid.
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view without_trailing_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Fetched {
  std::string body;
  std::string error;  // "" on success
};

// GET https://<host>:<port>/.well-known/mta-sts.txt from one address.
awaitable<Fetched> fetch_from(std::string host, std::string address, MtaStsOptions options) {
  auto ex = co_await asio::this_coro::executor;
  error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) co_return Fetched{{}, "bad address " + address};
  beast::ssl_stream<beast::tcp_stream> stream(ex, smtp::trusting_client_context(options.ca_file));
  SSL* ssl = stream.native_handle();
  SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);  // the shared context verifies nothing by itself
  SSL_set_tlsext_host_name(ssl, host.c_str());
  SSL_set1_host(ssl, host.c_str());  // RFC 8461 §3.3: the certificate must name the policy host
  auto& tcp = beast::get_lowest_layer(stream);
  // One deadline for the whole exchange: a slow policy host must not hold a
  // destination's sessions for longer than configured.
  tcp.expires_after(options.timeout);
  co_await tcp.async_connect(asio::ip::tcp::endpoint(ip, options.port), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Fetched{{}, "connect " + address + ": " + ec.message()};
  co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    const long verify = SSL_get_verify_result(ssl);
    std::string why = verify != X509_V_OK ? std::string(X509_verify_cert_error_string(verify)) : ec.message();
    co_return Fetched{{}, "TLS with " + host + ": " + why};
  }
  http::request<http::empty_body> request{http::verb::get, "/.well-known/mta-sts.txt", 11};
  request.set(http::field::host, host);
  request.set(http::field::user_agent, "kurier");
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Fetched{{}, "request: " + ec.message()};
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(kMaxPolicyBytes);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec == http::error::body_limit) co_return Fetched{{}, "policy larger than 64 KB"};
  if (ec) co_return Fetched{{}, "response: " + ec.message()};
  auto& response = parser.get();
  // RFC 8461 §3.3: redirects are not followed; only a 200 carries a policy.
  if (response.result_int() != 200) co_return Fetched{{}, "HTTP status " + std::to_string(response.result_int())};
  std::string_view type(response[http::field::content_type].data(), response[http::field::content_type].size());
  if (!text::istarts_with(type, "text/plain"))
    co_return Fetched{{}, "content type is not text/plain"};
  // No close_notify exchange: the body is complete (Content-Length or chunked end).
  beast::get_lowest_layer(stream).close();
  co_return Fetched{std::move(response.body()), {}};
}

}  // namespace

std::string_view to_string(StsMode mode) {
  switch (mode) {
    case StsMode::enforce: return "enforce";
    case StsMode::testing: return "testing";
    case StsMode::none: return "none";
  }
  return "none";
}

StsPolicyParse parse_sts_policy(std::string_view text) {
  StsPolicyParse out;
  StsPolicy policy;
  bool have_version = false, have_mode = false, have_max_age = false;
  std::size_t line_no = 0;
  auto fail = [&](std::string message) {
    out.error = "line " + std::to_string(line_no) + ": " + std::move(message);
    return out;
  };
  while (!text.empty()) {
    ++line_no;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    line = trim(line);
    if (line.empty()) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("not \"key: value\"");
    const std::string_view key = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (key == "version") {
      if (value != "STSv1") return fail("version must be STSv1");
      have_version = true;
    } else if (key == "mode") {
      if (value == "enforce") policy.mode = StsMode::enforce;
      else if (value == "testing") policy.mode = StsMode::testing;
      else if (value == "none") policy.mode = StsMode::none;
      else return fail("mode must be enforce, testing or none");
      have_mode = true;
    } else if (key == "max_age") {
      std::int64_t seconds = -1;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec != std::errc{} || ptr != value.data() + value.size() || seconds < 0 || seconds > kMaxAgeLimit)
        return fail("max_age must be an integer 0..31557600");
      policy.max_age = std::chrono::seconds(seconds);
      have_max_age = true;
    } else if (key == "mx") {
      std::string_view pattern = without_trailing_dot(value);
      const std::string_view name = pattern.starts_with("*.") ? pattern.substr(2) : pattern;
      const bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return is_alnum(c) || c == '-' || c == '.' || c == '_';
      });
      if (!valid) return fail("mx must be a host name or \"*.\" and a domain");
      policy.mx.push_back(text::lower_ascii(pattern));
    }
    // Other keys are extensions (RFC 8461 §3.2): ignored.
  }
  line_no = 0;
  if (!have_version) return fail("version is missing");
  if (!have_mode) return fail("mode is missing");
  if (!have_max_age) return fail("max_age is missing");
  if (policy.mode != StsMode::none && policy.mx.empty()) return fail("mx is missing");
  out.policy = std::move(policy);
  return out;
}

std::optional<std::string> parse_sts_record(std::string_view record) {
  bool first = true;
  std::optional<std::string> id;
  while (!record.empty()) {
    const std::size_t semi = record.find(';');
    const std::string_view field = trim(record.substr(0, semi));
    record.remove_prefix(semi == std::string_view::npos ? record.size() : semi + 1);
    if (field.empty()) continue;
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = trim(field.substr(0, eq));
    const std::string_view value = trim(field.substr(eq + 1));
    if (first) {
      if (key != "v" || value != "STSv1") return std::nullopt;  // §3.1: v must come first
      first = false;
    } else if (key == "id") {
      if (value.empty() || value.size() > 32 || !std::all_of(value.begin(), value.end(), is_alnum))
        return std::nullopt;
      id = std::string(value);
    }
  }
  return id;
}

bool mx_matches(std::string_view pattern, std::string_view host) {
  pattern = without_trailing_dot(pattern);
  host = without_trailing_dot(host);
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.net"
    if (host.size() <= suffix.size()) return false;
    const std::string_view label = host.substr(0, host.size() - suffix.size());
    return label.find('.') == std::string_view::npos && text::iequals(host.substr(label.size()), suffix);
  }
  return text::iequals(pattern, host);
}

bool mx_allowed(const StsPolicy& policy, std::string_view host) {
  return std::any_of(policy.mx.begin(), policy.mx.end(), [&](const std::string& p) { return mx_matches(p, host); });
}

struct MtaSts::Impl {
  struct Entry {
    std::optional<std::string> txt_id;    // the id last seen in DNS; nullopt: no record
    std::int64_t txt_checked_ms = -1;     // when the TXT answer above was taken
    std::optional<StsPolicy> policy;      // last valid policy fetched
    std::string policy_id;                // the id it was fetched under
    std::int64_t policy_expires_ms = 0;   // fetch time + max_age
  };

  MtaStsOptions options;
  dns::ResolverOptions dns;
  asio::thread_pool txt_pool{kTxtThreads};
  std::mutex mutex;
  std::map<std::string, Entry> cache;  // one per domain ever looked up with a record

  void remember(const std::string& domain, const Entry& entry, std::int64_t now) {
    std::lock_guard lock(mutex);
    cache[domain] = entry;  // also "no record": spares the next session the TXT query
    if (cache.size() > kMaxCachedDomains) {
      // Forget domains without a policy whose TXT answer is stale anyway.
      std::erase_if(cache, [now](const auto& item) {
        return !item.second.policy && now - item.second.txt_checked_ms >= kTxtRecheck.count() * 1000;
      });
    }
  }

  awaitable<dns::TxtResult> query_txt(std::string name) {
    auto initiate = [this, name](auto handler) {
      asio::post(txt_pool, [this, name, handler = std::move(handler)]() mutable {
        dns::TxtResult result;
        try {
          result = dns::lookup_txt(name, dns);
        } catch (const std::exception& e) {
          result.status = dns::TxtStatus::temporary;
          result.detail = e.what();
        }
        auto executor = asio::get_associated_executor(handler);
        asio::post(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
          handler(std::move(result));
        });
      });
    };
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(dns::TxtResult)>(
        std::move(initiate), asio::use_awaitable);
  }
};

MtaSts::MtaSts(MtaStsOptions options, dns::ResolverOptions dns) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->dns = std::move(dns);
  impl_->dns.cache = false;
}

MtaSts::~MtaSts() { impl_->txt_pool.join(); }

const MtaStsOptions& MtaSts::options() const { return impl_->options; }

namespace {

// The cached policy stands in (RFC 8461 §5.1: an unexpired policy survives a missing
// record or a failed fetch); without one, `why` is all there is to say.
void use_cached_or_none(StsLookup& out, const std::optional<StsPolicy>& cached, bool valid, const std::string& why) {
  if (valid) {
    out.policy = cached;
    out.cached = true;
    out.detail = "cached policy (" + why + ")";
  } else {
    out.detail = why;
  }
}

// Fetches and parses the policy at https://mta-sts.DOMAIN/ from each of its addresses
// in turn. The policy, or the reason there is none.
awaitable<std::pair<std::optional<StsPolicy>, std::string>> fetch_policy(const std::string& domain,
                                                                         MtaSts::AddressLookup resolve,
                                                                         MtaStsOptions options) {
  const std::string host = "mta-sts." + domain;
  std::vector<std::string> addresses = co_await resolve(host);
  std::string error = addresses.empty() ? "no address for " + host : "";
  Fetched fetched;
  for (const auto& address : addresses) {
    fetched = co_await fetch_from(host, address, options);
    error = fetched.error;
    if (error.empty()) break;
  }
  if (!error.empty()) co_return std::make_pair(std::optional<StsPolicy>(), error);
  StsPolicyParse parsed = parse_sts_policy(fetched.body);
  if (!parsed.policy) co_return std::make_pair(std::optional<StsPolicy>(), "invalid policy: " + parsed.error);
  co_return std::make_pair(std::move(parsed.policy), std::string());
}

}  // namespace

awaitable<StsLookup> MtaSts::lookup(std::string domain, AddressLookup resolve) {
  Impl& s = *impl_;
  StsLookup out;
  if (!s.options.enabled) {
    out.detail = "mta-sts disabled";
    co_return out;
  }
  const std::int64_t now = now_ms();
  Impl::Entry entry;
  {
    std::lock_guard lock(s.mutex);
    if (auto it = s.cache.find(domain); it != s.cache.end()) entry = it->second;
  }
  const bool cached_valid = entry.policy && entry.policy_expires_ms > now;

  // 1. The TXT record (cached briefly).
  if (entry.txt_checked_ms < 0 || now - entry.txt_checked_ms >= kTxtRecheck.count() * 1000) {
    dns::TxtResult txt = co_await s.query_txt("_mta-sts." + domain);
    if (txt.status == dns::TxtStatus::temporary) {
      // Unknown: keep what we had, ask again next time.
      use_cached_or_none(out, entry.policy, cached_valid, "TXT lookup failed: " + txt.detail);
      co_return out;
    }
    std::vector<std::string> ids;
    for (const auto& record : txt.records)
      if (auto id = parse_sts_record(record)) ids.push_back(*id);
    // RFC 8461 §3.1: more than one STSv1 record is treated as none.
    entry.txt_id = ids.size() == 1 ? std::optional<std::string>(ids.front()) : std::nullopt;
    entry.txt_checked_ms = now;
  }

  // 2. The policy: cached under the same id, else fetched.
  if (!entry.txt_id) {
    // RFC 8461 §5.1: a record that disappeared does not revoke a cached policy.
    if (cached_valid) use_cached_or_none(out, entry.policy, true, "no _mta-sts record now");
    else out.detail = "no _mta-sts record";
  } else if (cached_valid && entry.policy_id == *entry.txt_id) {
    out.policy = entry.policy;
    out.cached = true;
    out.detail = "cached policy id=" + entry.policy_id;
  } else {
    auto [policy, error] = co_await fetch_policy(domain, std::move(resolve), s.options);
    if (policy) {
      entry.policy = std::move(policy);
      entry.policy_id = *entry.txt_id;
      entry.policy_expires_ms = now + std::chrono::duration_cast<std::chrono::milliseconds>(entry.policy->max_age).count();
      out.policy = entry.policy;
      out.detail = "fetched policy id=" + entry.policy_id;
    } else {
      logger()->warn("policy fetch failed domain={} error=\"{}\"", domain, error);
      // Without a cached policy, deliver as though the domain had none.
      if (cached_valid) use_cached_or_none(out, entry.policy, true, "fetch failed: " + error);
      else out.detail = "fetch failed: " + error;
    }
  }
  s.remember(domain, entry, now);
  co_return out;
}

}  // namespace kurier::engine
