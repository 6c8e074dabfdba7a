// The bounce listener: a small inbound SMTP server for the VERP domain(s). MTAs send
// their DSNs, ARF reports and auto-replies to b+TOKEN@<verp domain>; each message
// received is handed to a handler (parse + apply to the queue) and answered 250 only
// after the handler returns, i.e. after the result is durable. A handler failure is
// answered 451 4.3.0, so the sending MTA keeps the message and retries.
//
// Protocol: the shared server dialogue of smtp/server_session.h (EHLO/HELO, MAIL,
// RCPT, DATA with dot un-stuffing and a size limit, RSET, NOOP, QUIT); PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES advertised. RCPT is accepted
// only for the accepted domains (any local part, so postmaster@ works too); anything
// else is "550 5.7.1 relaying denied". No AUTH, no STARTTLS: this is a final
// destination, not a relay.
//
// The message handed over is the received data with "Return-Path: <MAIL FROM>" and
// one "Delivered-To: <RCPT>" per recipient prepended, as a delivery agent does, so
// the envelope recipient (which carries the VERP token) is among the parser's
// candidates even when the message's headers do not name it.
//
// Threading: the server runs on its own io_context thread; the handler runs on a
// one-thread pool (it blocks on the store's fsync), never on the network loop. One
// message at a time is applied; connections are independent. Construct, start(),
// stop() and destroy on one thread; port() and stats() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engine/bounces/apply.h"
#include "engine/core/config.h"
#include "queue/store.h"

namespace kurier::engine {

struct BounceListenerOptions {
  std::string listen = "127.0.0.1:2526";  // host:port; port 0 picks a free port
  std::string hostname = "localhost";     // in the greeting and the EHLO reply
  // Largest message accepted (552 5.3.4 beyond; also advertised as SIZE). Bounces
  // carry the original message back: 10 MB covers that for any newsletter.
  std::size_t max_message_bytes = 10u << 20;
  // RFC 5321 4.5.3.2 server timeout: at least 5 minutes per command and data block.
  std::chrono::milliseconds command_timeout{std::chrono::minutes(5)};
};

struct BounceListenerStats {
  std::uint64_t connections = 0;          // accepted so far
  std::uint64_t messages = 0;             // answered 250 after DATA
  std::uint64_t rejected_recipients = 0;  // 550 relaying denied
  std::uint64_t oversized = 0;            // 552 message too big
  std::uint64_t failed = 0;               // handler failed: 451
  ApplyStats applied;                     // the store-backed listener's matching totals
};

class BounceListener {
 public:
  // Applies one received message durably; throws on failure (-> 451).
  using Handler = std::function<void(std::string_view raw_message)>;
  // True if RCPT TO this (lower-case) domain is accepted. Runs on the network thread:
  // keep it quick (no disk I/O per call).
  using DomainFilter = std::function<bool(std::string_view domain)>;

  // Most recipients per transaction (452 4.5.3 beyond): a DSN has one, the limit
  // only stops a client from growing the envelope without bound.
  static constexpr std::size_t kMaxRecipients = 100;
  // Connections served at once; more are answered 421 and closed.
  static constexpr std::size_t kMaxConnections = 64;
  // Longest command line (RFC 5321: 512 octets; extensions may add some).
  static constexpr std::size_t kMaxCommandLine = 2048;
  // Longest text line inside DATA (RFC 5321: 1000 octets; real mail breaks that,
  // but a line beyond this is not mail).
  static constexpr std::size_t kMaxDataLine = 1u << 20;

  // Binds options.listen now (throws std::runtime_error naming the address).
  BounceListener(Handler handler, DomainFilter accept_domain, BounceListenerOptions options);
  // The listener of `kurier serve`: parses each message (bounce::parse) and applies it
  // to `store` (BounceApplier); accepts RCPT for config.bounce.domains, or when that
  // is empty for the VERP domains of the campaigns in the store. Binds `listen`
  // (default config.bounce.listen). Throws InputError without [verp] secret.
  // `events` (if any) logs what is applied.
  BounceListener(queue::Store& store, const Config& config, std::string listen = {},
                 CampaignEvents* events = nullptr);
  ~BounceListener();
  BounceListener(const BounceListener&) = delete;
  BounceListener& operator=(const BounceListener&) = delete;

  void start();  // starts serving on the listener's own thread
  void stop();   // stops accepting; the message being applied finishes. Idempotent.
  std::uint16_t port() const;
  BounceListenerStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kurier::engine
