// SMTP client sessions: connect, greeting, EHLO/HELO, STARTTLS, pipelined transactions, RSET, QUIT.
// Coroutines on the caller's executor; a session never leaves the thread that opened it.
// Network errors, timeouts and garbage replies come back as error_code values, never thrown.
#include "smtp/client.h"
#include "smtp/tls_trust.h"

// g++ 12 false positive on Asio 1.74's awaitable frames: it pairs the frame's sized
// operator delete with a global operator new it cannot see through.
// Reported at end of file, so it cannot be scoped with push/pop around one function.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "common/asio.h"
#include "common/log.h"
#include "common/text.h"

namespace kurier::smtp {

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::none: return "";
    case Phase::mta_sts: return "mta-sts";
    case Phase::connect: return "connect";
    case Phase::greeting: return "greeting";
    case Phase::ehlo: return "ehlo";
    case Phase::helo: return "helo";
    case Phase::starttls: return "starttls";
    case Phase::mail: return "mail";
    case Phase::rcpt: return "rcpt";
    case Phase::data: return "data";
    case Phase::content: return "content";
    case Phase::final: return "final";
  }
  return "";
}

namespace {

using asio::awaitable;
using asio::ip::tcp;
using std::chrono::milliseconds;

// One read_some fills this; a pipelined flight's replies (MAIL + 100 RCPT + DATA, ~50
// bytes each) fit in one read. Per connection, so hundreds of sessions cost ~2 MB.
constexpr std::size_t kReadBufferBytes = 8 * 1024;

// Commands per pipelined flight. We write a whole flight before reading its replies;
// if a flight were unbounded, a server answering as it reads could fill our receive
// buffer while we still write, and both sides would block. 100 RCPT replies (~5 KB)
// are far below any socket buffer. RFC 5321 §4.5.3.1.8 also lets servers cap
// recipients at 100, so most transactions need one flight.
constexpr std::size_t kMaxPipelineDepth = 101;

// Message content goes out in writes of at most this many bytes; the data_block
// deadline (RFC 5321 §4.5.3.2.5: per TCP SEND) restarts after each.
constexpr std::size_t kContentWriteChunk = 64 * 1024;

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kEndOfData = ".\r\n";

const std::shared_ptr<spdlog::logger>& logger() {
  static const std::shared_ptr<spdlog::logger> instance = log::get("smtp");
  return instance;
}

// One client context per process: building it loads cipher tables and is far too
// slow to repeat per connection. A function-local static is initialised once even
// with concurrent first callers; SSL_CTX is safe to share across threads for SSL_new.
asio::ssl::context& tls_context() {
  static asio::ssl::context instance = [] {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_compression);
    // Opportunistic TLS (RFC 7435): MX certificates are rarely valid for the MX name,
    // and refusing them would only push the mail to plaintext.
    ctx.set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }();
  return instance;
}

// The result of the certificate check requested with SSL_set1_host, after a handshake.
std::string certificate_verdict(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return "no certificate";
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return "verified";
  return X509_verify_cert_error_string(result);
}

error_code timed_out_error() { return make_error_code(asio::error::timed_out); }
error_code protocol_error() { return make_error_code(boost::system::errc::protocol_error); }

Reply local_reply(int code, std::string_view enhanced, std::string_view text) {
  Reply r;
  r.code = code;
  r.enhanced = enhanced;
  r.text = text;
  r.lines.push_back(std::to_string(code) + " " + std::string(enhanced) + " " + std::string(text));
  return r;
}

bool accepted(const Reply& r) { return r.code >= 200 && r.code < 300; }

using text::iequals;

// An address that would let a caller inject commands (CR, LF) or end the C string.
bool unsafe_address(std::string_view address) {
  return address.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

Extensions parse_extensions(const Reply& ehlo) {
  Extensions x;
  x.esmtp = true;
  // The first line is the server's greeting name; each later line is one keyword.
  for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::string_view line = ehlo.lines[i];
    if (line.size() <= 4) continue;
    line.remove_prefix(4);
    std::size_t space = line.find(' ');
    std::string_view keyword = line.substr(0, space);
    std::string_view param = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
    if (iequals(keyword, "PIPELINING")) {
      x.pipelining = true;
    } else if (iequals(keyword, "STARTTLS")) {
      x.starttls = true;
    } else if (iequals(keyword, "8BITMIME")) {
      x.eight_bit_mime = true;
    } else if (iequals(keyword, "SMTPUTF8")) {
      x.smtputf8 = true;
    } else if (iequals(keyword, "SIZE")) {
      x.size = true;
      std::uint64_t limit = 0;
      auto [end, ec] = std::from_chars(param.data(), param.data() + param.size(), limit);
      (void)end;
      x.size_limit = ec == std::errc{} ? limit : 0;  // "SIZE" alone: no fixed limit
    }
  }
  return x;
}

// The connection: socket (plain, then TLS after STARTTLS), deadline timer, read buffer
// and reply parser. Shared so that the deadline timer's handler can tell, through a
// weak_ptr, whether the connection still exists when it fires.
struct Conn {
  explicit Conn(const asio::any_io_executor& ex) : plain(ex), timer(ex) {}

  tcp::socket& socket() { return tls ? tls->next_layer() : plain; }

  tcp::socket plain;  // moved into `tls` by STARTTLS
  std::optional<asio::ssl::stream<tcp::socket>> tls;
  asio::steady_timer timer;
  std::weak_ptr<Conn> self;
  std::uint64_t deadline_gen = 0;  // a timer firing for an older deadline is ignored
  bool armed = false;
  bool timed_out = false;
  std::array<char, kReadBufferBytes> buf{};
  std::size_t buf_begin = 0;
  std::size_t buf_end = 0;
  ReplyParser parser;
  std::string peer;  // "host[address]:port" for logs
};

// Deadlines: on expiry the socket is closed, which fails whatever operation is pending
// (or the next one) and the flag turns that failure into timed_out. Closing rather than
// cancel(): a step may be between two operations when the timer fires.
void arm(Conn& c, milliseconds timeout) {
  c.timer.expires_after(timeout);
  c.armed = true;
  std::uint64_t gen = ++c.deadline_gen;
  c.timer.async_wait([weak = c.self, gen](const error_code& ec) {
    if (ec) return;
    auto conn = weak.lock();
    if (!conn || conn->deadline_gen != gen) return;
    conn->timed_out = true;
    error_code ignored;
    conn->socket().close(ignored);
  });
}

void ensure_deadline(Conn& c, milliseconds timeout) {
  if (!c.armed) arm(c, timeout);
}

void clear_deadline(Conn& c) {
  if (!c.armed) return;
  c.armed = false;
  ++c.deadline_gen;
  c.timer.cancel();
}

error_code op_error(const Conn& c, const error_code& ec) {
  if (c.timed_out) return timed_out_error();
  return ec;
}

void close_conn(Conn& c) {
  clear_deadline(c);
  error_code ignored;
  c.socket().shutdown(tcp::socket::shutdown_both, ignored);
  c.socket().close(ignored);
}

template <typename Buffers>
awaitable<error_code> write_all(Conn& c, const Buffers& buffers) {
  error_code ec;
  if (c.tls) {
    co_await asio::async_write(*c.tls, buffers, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(c.plain, buffers, asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return c.timed_out ? timed_out_error() : ec;
}

// Writes `bytes` under a deadline that the following read_reply() keeps running:
// the step "send command, get reply" has one deadline (RFC 5321 §4.5.3.2).
awaitable<error_code> write_command(Conn& c, std::string_view bytes, milliseconds timeout) {
  ensure_deadline(c, timeout);
  error_code ec = co_await write_all(c, asio::buffer(bytes.data(), bytes.size()));
  if (ec) clear_deadline(c);
  co_return ec;
}

// Reads one reply: from bytes already buffered when possible (pipelined replies
// usually arrive together), else read_some under the step's deadline.
awaitable<error_code> read_reply(Conn& c, milliseconds timeout, Reply& out) {
  error_code ec;
  for (;;) {
    if (c.buf_begin < c.buf_end) {
      std::size_t used = c.parser.feed({c.buf.data() + c.buf_begin, c.buf_end - c.buf_begin});
      c.buf_begin += used;
      if (c.parser.error()) {
        ec = protocol_error();
        break;
      }
      if (c.parser.ready()) {
        out = c.parser.take();
        break;
      }
    }
    c.buf_begin = c.buf_end = 0;
    ensure_deadline(c, timeout);
    std::size_t n = 0;
    if (c.tls) {
      n = co_await c.tls->async_read_some(asio::buffer(c.buf), asio::redirect_error(asio::use_awaitable, ec));
    } else {
      n = co_await c.plain.async_read_some(asio::buffer(c.buf), asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec || c.timed_out) {
      ec = op_error(c, ec ? ec : timed_out_error());
      break;
    }
    c.buf_end = n;
  }
  clear_deadline(c);
  co_return ec;
}

awaitable<error_code> command(Conn& c, std::string_view line, milliseconds timeout, Reply& out) {
  error_code ec = co_await write_command(c, line, timeout);
  if (ec) co_return ec;
  co_return co_await read_reply(c, timeout, out);
}

// Best effort goodbye for a server that refused us: QUIT without waiting for the
// reply (the server is likely closing anyway), bounded by the quit timeout.
awaitable<void> abandon(Conn& c, milliseconds timeout) {
  if (c.socket().is_open()) {
    co_await write_command(c, "QUIT\r\n", timeout);
  }
  close_conn(c);
}

std::string describe(const Target& t, std::uint16_t port) {
  std::string out = t.host.empty() ? std::string("-") : t.host;
  out += '[';
  out += t.address;
  out += "]:";
  out += std::to_string(port);
  return out;
}

struct Attempt {
  std::shared_ptr<Conn> conn;
  SessionInfo info;
};

// EHLO, falling back to HELO when EHLO is refused with 5xx (RFC 5321 §4.1.4).
// Fills `info.extensions`; on refusal fills `failure` and returns false.
awaitable<bool> greet(Conn& c, const SessionOptions& o, SessionInfo& info, ConnectFailure& failure,
                      bool allow_helo) {
  std::string ehlo = "EHLO " + o.helo_name + "\r\n";
  Reply reply;
  error_code ec = co_await command(c, ehlo, o.timeouts.ehlo, reply);
  if (ec) {
    failure.phase = Phase::ehlo;
    failure.error = ec;
    co_return false;
  }
  if (accepted(reply)) {
    info.extensions = parse_extensions(reply);
    co_return true;
  }
  if (!reply.permanent() || !allow_helo) {
    failure.phase = Phase::ehlo;
    failure.reply = std::move(reply);
    co_return false;
  }
  std::string helo = "HELO " + o.helo_name + "\r\n";
  ec = co_await command(c, helo, o.timeouts.ehlo, reply);
  if (ec) {
    failure.phase = Phase::helo;
    failure.error = ec;
    co_return false;
  }
  if (!accepted(reply)) {
    failure.phase = Phase::helo;
    failure.reply = std::move(reply);
    co_return false;
  }
  info.extensions = Extensions{};  // HELO: no extensions, esmtp = false
  co_return true;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// STARTTLS and the handshake. Returns false with `failure` filled when the target must
// be given up; true when the session may continue (with or without TLS).
awaitable<bool> upgrade(Conn& c, const SessionOptions& o, SessionInfo& info, ConnectFailure& failure) {
  if (o.tls == TlsPolicy::disabled) co_return true;
  if (!info.extensions.starttls) {
    if (o.tls == TlsPolicy::required) {
      failure.phase = Phase::starttls;
      failure.error = make_error_code(boost::system::errc::protocol_not_supported);
      failure.detail = "STARTTLS not offered";
      co_return false;
    }
    co_return true;
  }
  Reply reply;
  error_code ec = co_await command(c, "STARTTLS\r\n", o.timeouts.starttls, reply);
  if (ec) {
    failure.phase = Phase::starttls;
    failure.error = ec;
    co_return false;
  }
  if (reply.code != 220) {
    if (o.tls == TlsPolicy::required) {
      failure.phase = Phase::starttls;
      failure.reply = std::move(reply);
      co_return false;
    }
    // Refused: the server is still in its post-EHLO state, so go on in plaintext.
    logger()->debug("starttls refused peer={} reply=\"{}\"", c.peer, reply.summary());
    co_return true;
  }
  // Bytes the server sent after its 220 were not protected by TLS: drop them rather
  // than read them as replies inside the TLS session (STARTTLS response injection).
  c.buf_begin = c.buf_end = 0;
  const bool check = o.cert_check != CertCheck::none;
  c.tls.emplace(std::move(c.plain), check ? trusting_client_context(o.ca_file) : tls_context());
  const std::string& host = info.target.host;
  if (!host.empty() && !is_ip_literal(host)) {
    // RFC 6066 §3: SNI carries host names only, never address literals.
    SSL_set_tlsext_host_name(c.tls->native_handle(), host.c_str());
  }
  // The chain is checked during the handshake and the host name with it; the result
  // is read afterwards (certificate_verdict), the handshake itself never fails on it.
  if (check) SSL_set1_host(c.tls->native_handle(), host.c_str());
  arm(c, o.timeouts.starttls);
  co_await c.tls->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  clear_deadline(c);
  if (ec || c.timed_out) {
    failure.phase = Phase::starttls;
    failure.error = op_error(c, ec ? ec : timed_out_error());
    co_return false;
  }
  info.tls = true;
  SSL* ssl = c.tls->native_handle();
  info.tls_protocol = SSL_get_version(ssl);
  const char* cipher = SSL_get_cipher_name(ssl);
  info.tls_cipher = cipher ? cipher : "";
  if (check) {
    info.tls_verify = certificate_verdict(ssl);
    info.tls_verified = info.tls_verify == "verified";
    if (!info.tls_verified && o.cert_check == CertCheck::enforce) {
      // MTA-STS: an unverified channel is no better than plaintext; give the target up.
      failure.phase = Phase::starttls;
      failure.error = make_error_code(boost::system::errc::permission_denied);
      failure.detail = "certificate verify failed: " + info.tls_verify;
      co_return false;
    }
  } else {
    info.tls_verify = "not checked";
  }
  // RFC 3207 §4.2: forget what the server said before TLS and ask again.
  co_return co_await greet(c, o, info, failure, false);
}

awaitable<std::shared_ptr<Conn>> try_target(const Target& target, const SessionOptions& o, SessionInfo& info,
                                            ConnectFailure& failure) {
  auto ex = co_await asio::this_coro::executor;
  failure.target = target;
  info.target = target;
  error_code ec;
  auto address = asio::ip::make_address(target.address, ec);
  if (ec) {
    failure.phase = Phase::connect;
    failure.error = ec;
    co_return nullptr;
  }
  auto conn = std::make_shared<Conn>(ex);
  conn->self = conn;
  conn->peer = describe(target, o.port);
  Conn& c = *conn;

  arm(c, o.timeouts.connect);
  co_await c.plain.async_connect(tcp::endpoint(address, o.port), asio::redirect_error(asio::use_awaitable, ec));
  clear_deadline(c);
  if (ec || c.timed_out) {
    failure.phase = Phase::connect;
    failure.error = op_error(c, ec ? ec : timed_out_error());
    close_conn(c);
    co_return nullptr;
  }
  // Commands are written whole (or a whole pipelined flight at once); Nagle would
  // only delay the small writes of lock-step dialogues by a round trip.
  c.plain.set_option(tcp::no_delay(true), ec);

  ec = co_await read_reply(c, o.timeouts.greeting, info.greeting);
  if (ec) {
    failure.phase = Phase::greeting;
    failure.error = ec;
    close_conn(c);
    co_return nullptr;
  }
  if (info.greeting.code != 220) {
    failure.phase = Phase::greeting;
    failure.reply = info.greeting;
    co_await abandon(c, o.timeouts.quit);
    co_return nullptr;
  }
  if (!co_await greet(c, o, info, failure, true) || !co_await upgrade(c, o, info, failure)) {
    // A refusal by reply (or a missing STARTTLS) leaves a working connection: say
    // goodbye. After a network or TLS error there is nobody left to talk to.
    bool polite = !failure.error || failure.error == boost::system::errc::protocol_not_supported ||
                  failure.error == boost::system::errc::permission_denied;  // refused certificate
    if (polite) {
      co_await abandon(c, o.timeouts.quit);
    } else {
      close_conn(c);
    }
    co_return nullptr;
  }
  co_return conn;
}

}  // namespace

// Few distinct trust stores exist (one per config), so the map stays a handful of entries.
asio::ssl::context& trusting_client_context(const std::string& ca_file) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<asio::ssl::context>> contexts;
  std::lock_guard lock(mutex);
  auto& slot = contexts[ca_file];
  if (!slot) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_compression);
    ctx->set_verify_mode(asio::ssl::verify_none);
    error_code ec;
    if (ca_file.empty()) ctx->set_default_verify_paths(ec);
    else ctx->load_verify_file(ca_file, ec);
    // An unreadable store verifies nothing: every check then fails with "unable to get
    // local issuer certificate", which names the problem in the attempt log.
    if (ec) logger()->error("tls trust store unusable file=\"{}\" error=\"{}\"", ca_file, ec.message());
    slot = std::move(ctx);
  }
  return *slot;
}

struct Session::Impl {
  enum class Step : std::uint8_t { mail, rcpt, data };
  struct Command {
    std::size_t end;   // offset in `commands_text` just past this command's CRLF
    Step step;
    std::size_t rcpt;  // recipient index for Step::rcpt
  };

  std::shared_ptr<Conn> conn;
  SessionInfo info;
  SessionOptions options;
  bool usable = true;
  std::size_t transactions = 0;
  // Reused across transactions so a steady stream of messages allocates nothing here.
  std::string commands_text;
  std::vector<Command> commands;

  milliseconds timeout_for(Step s) const {
    switch (s) {
      case Step::mail: return options.timeouts.mail;
      case Step::rcpt: return options.timeouts.rcpt;
      case Step::data: return options.timeouts.data_init;
    }
    return options.timeouts.mail;
  }

  static Phase phase_for(Step s) {
    switch (s) {
      case Step::mail: return Phase::mail;
      case Step::rcpt: return Phase::rcpt;
      case Step::data: return Phase::data;
    }
    return Phase::mail;
  }

  void fail(TransactionResult& r, error_code ec, Phase phase) {
    r.error = ec;
    r.error_phase = phase;
    usable = false;
    close_conn(*conn);
    logger()->debug("transaction error peer={} phase={} error=\"{}\"", conn->peer, to_string(phase), ec.message());
  }

  void build_commands(const Envelope& e, std::uint64_t size, TransactionResult& r) {
    const Extensions& x = info.extensions;
    commands_text.clear();
    commands.clear();
    commands_text += "MAIL FROM:<";
    commands_text += e.mail_from;
    commands_text += '>';
    if (x.size) {
      std::array<char, 24> digits{};
      auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), size);
      (void)ec;
      commands_text += " SIZE=";
      commands_text.append(digits.data(), end);
    }
    if (e.eight_bit && x.eight_bit_mime) commands_text += " BODY=8BITMIME";
    if (e.smtputf8 && x.smtputf8) commands_text += " SMTPUTF8";
    commands_text += kCrlf;
    commands.push_back({commands_text.size(), Step::mail, 0});
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
      if (unsafe_address(e.recipients[i])) {
        r.rcpt[i] = local_reply(501, "5.1.3", "bad recipient address syntax");
        continue;
      }
      commands_text += "RCPT TO:<";
      commands_text += e.recipients[i];
      commands_text += ">\r\n";
      commands.push_back({commands_text.size(), Step::rcpt, i});
    }
    commands_text += "DATA\r\n";
    commands.push_back({commands_text.size(), Step::data, 0});
  }

  // RSET after a failed transaction so the connection can carry the next one.
  awaitable<void> reset() {
    Reply reply;
    error_code ec = co_await command(*conn, "RSET\r\n", options.timeouts.rset, reply);
    if (ec || !accepted(reply)) {
      logger()->debug("rset failed peer={} error=\"{}\" reply=\"{}\"", conn->peer, ec.message(), reply.summary());
      usable = false;
      close_conn(*conn);
    }
  }

  awaitable<TransactionResult> send(const Envelope& e, std::string_view message);
  awaitable<void> quit();
};

awaitable<TransactionResult> Session::Impl::send(const Envelope& e, std::string_view message) {
  TransactionResult r;
  r.rcpt.resize(e.recipients.size());
  if (!usable) {
    r.error = make_error_code(asio::error::not_connected);
    r.error_phase = Phase::mail;
    co_return r;
  }
  const Extensions& x = info.extensions;
  const bool needs_crlf = !message.empty() && !message.ends_with(kCrlf);
  const std::uint64_t size = message.size() + (needs_crlf ? kCrlf.size() : 0);
  if (x.size_limit > 0 && size > x.size_limit) {
    // RFC 1870 §6: don't send what the server has already said it will refuse.
    r.mail = local_reply(552, "5.3.4", "message size exceeds fixed limit");
    co_return r;
  }
  if (e.smtputf8 && !x.smtputf8) {
    // RFC 6531 §3.4: UTF-8 addresses must not go to a server without SMTPUTF8.
    r.mail = local_reply(553, "5.6.7", "SMTPUTF8 is required but was not offered by the server");
    co_return r;
  }
  if (unsafe_address(e.mail_from)) {
    r.mail = local_reply(501, "5.1.7", "bad sender address syntax");
    co_return r;
  }
  ++transactions;
  build_commands(e, size, r);
  Conn& c = *conn;

  const std::size_t depth = x.pipelining && options.use_pipelining ? kMaxPipelineDepth : 1;
  std::size_t rcpt_accepted = 0;
  std::size_t next = 0;
  std::size_t written_end = 0;  // offset in commands_text of what has been sent
  while (next < commands.size()) {
    // Between flights (always, in lock-step): stop once the outcome is settled.
    if (next > 0 && !accepted(r.mail)) break;
    if (commands[next].step == Step::data && rcpt_accepted == 0) break;
    std::size_t last = std::min(next + depth, commands.size());
    std::string_view flight(commands_text.data() + written_end, commands[last - 1].end - written_end);
    error_code ec = co_await write_command(c, flight, timeout_for(commands[next].step));
    if (ec) {
      fail(r, ec, phase_for(commands[next].step));
      co_return r;
    }
    written_end = commands[last - 1].end;
    for (; next < last; ++next) {
      const Command& cmd = commands[next];
      Reply* slot = cmd.step == Step::mail ? &r.mail : cmd.step == Step::rcpt ? &r.rcpt[cmd.rcpt] : &r.data;
      ec = co_await read_reply(c, timeout_for(cmd.step), *slot);
      if (ec) {
        fail(r, ec, phase_for(cmd.step));
        co_return r;
      }
      if (cmd.step == Step::rcpt && accepted(*slot)) ++rcpt_accepted;
    }
  }

  bool delivered = false;
  if (r.data.code == 354) {
    if (!accepted(r.mail) || rcpt_accepted == 0) {
      // RFC 2920 §3.1: DATA was pipelined but no recipient was accepted and the server
      // still said 354: end the message at once with an empty body. That reply is not
      // a delivery (nobody would receive it), so `final` stays "not reached".
      Reply ignored;
      error_code ec = co_await command(c, kEndOfData, options.timeouts.data_term, ignored);
      if (ec) {
        fail(r, ec, Phase::final);
        co_return r;
      }
    } else {
      std::array<asio::const_buffer, 3> content{
          asio::buffer(message.data(), message.size()),
          asio::buffer(kCrlf.data(), needs_crlf ? kCrlf.size() : 0),
          asio::buffer(kEndOfData.data(), kEndOfData.size())};
      const std::size_t total = asio::buffer_size(content);
      arm(c, options.timeouts.data_block);
      error_code ec;
      auto restart_deadline = [&c, total, timeout = options.timeouts.data_block](const error_code& err,
                                                                                  std::size_t done) -> std::size_t {
        if (err) return 0;
        if (done > 0 && done < total) arm(c, timeout);
        return kContentWriteChunk;
      };
      if (c.tls) {
        co_await asio::async_write(*c.tls, content, restart_deadline, asio::redirect_error(asio::use_awaitable, ec));
      } else {
        co_await asio::async_write(c.plain, content, restart_deadline, asio::redirect_error(asio::use_awaitable, ec));
      }
      clear_deadline(c);
      if (ec || c.timed_out) {
        fail(r, op_error(c, ec ? ec : timed_out_error()), Phase::content);
        co_return r;
      }
      ec = co_await read_reply(c, options.timeouts.data_term, r.final);
      if (ec) {
        fail(r, ec, Phase::final);
        co_return r;
      }
      delivered = accepted(r.final);
    }
  }
  if (logger()->should_log(spdlog::level::debug)) {
    logger()->debug("transaction peer={} from=<{}> rcpts={} accepted={} mail={} data={} final=\"{}\"", c.peer,
                    e.mail_from, e.recipients.size(), rcpt_accepted, r.mail.code, r.data.code, r.final.summary());
  }
  if (!delivered) co_await reset();
  co_return r;
}

awaitable<void> Session::Impl::quit() {
  if (!conn) co_return;
  Conn& c = *conn;
  usable = false;
  try {
    if (c.socket().is_open()) {
      Reply reply;
      error_code ec = co_await command(c, "QUIT\r\n", options.timeouts.quit, reply);
      if (ec) logger()->debug("quit peer={} error=\"{}\"", c.peer, ec.message());
    }
  } catch (const std::exception& ex) {
    // Only allocation failures can get here; quit() promises not to throw.
    logger()->warn("quit peer={} exception=\"{}\"", c.peer, ex.what());
  }
  // No TLS close_notify exchange: waiting for the peer's would add a round trip (or a
  // hang) for nothing, as the SMTP dialogue has already ended with QUIT.
  close_conn(c);
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Session::~Session() {
  if (impl_ && impl_->conn) close_conn(*impl_->conn);
}

const SessionInfo& Session::info() const { return impl_->info; }

bool Session::usable() const { return impl_->usable && impl_->conn->socket().is_open(); }

std::size_t Session::transactions() const { return impl_->transactions; }

awaitable<TransactionResult> Session::send(const Envelope& envelope, std::string_view message) {
  return impl_->send(envelope, message);
}

awaitable<void> Session::quit() { return impl_->quit(); }

awaitable<OpenResult> open_session(std::vector<Target> targets, SessionOptions options) {
  OpenResult result;
  for (const Target& target : targets) {
    SessionInfo info;
    ConnectFailure failure;
    std::shared_ptr<Conn> conn = co_await try_target(target, options, info, failure);
    if (!conn && options.tls == TlsPolicy::opportunistic && options.cert_check != CertCheck::enforce &&
        failure.phase == Phase::starttls && failure.error) {
      // Opportunistic TLS (RFC 7435): a server whose TLS is broken still gets the mail,
      // in plaintext, as it would had it not offered STARTTLS. Only `required` refuses.
      logger()->debug("starttls failed, retrying in plaintext peer={} error=\"{}\"", describe(target, options.port),
                      failure.error.message());
      result.failures.push_back(std::move(failure));
      SessionOptions plain = options;
      plain.tls = TlsPolicy::disabled;
      info = SessionInfo{};
      failure = ConnectFailure{};
      conn = co_await try_target(target, plain, info, failure);
      info.tls_fallback = true;
    }
    if (!conn) {
      logger()->debug("target failed peer={} phase={} error=\"{}\" reply=\"{}\"", describe(target, options.port),
                      to_string(failure.phase), failure.error.message(), failure.reply.summary());
      result.failures.push_back(std::move(failure));
      continue;
    }
    logger()->debug("session open peer={} esmtp={} pipelining={} tls={} protocol={} cipher={} cert=\"{}\"",
                    conn->peer, info.extensions.esmtp, info.extensions.pipelining, info.tls, info.tls_protocol,
                    info.tls_cipher, info.tls_verify);
    auto impl = std::make_unique<Session::Impl>();
    impl->conn = std::move(conn);
    impl->info = std::move(info);
    impl->options = std::move(options);
    result.session = std::make_unique<Session>(std::move(impl));
    break;
  }
  co_return result;
}

}  // namespace kurier::smtp
