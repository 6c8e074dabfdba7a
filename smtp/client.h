// The SMTP client session (RFC 5321) as Asio coroutines.
//
// open_session() tries the targets (MX hosts' addresses, in the order given) until
// one greets with 220 and accepts EHLO (or HELO as fallback), upgrading with
// STARTTLS when offered and allowed by the policy. Session::send() runs one mail
// transaction, pipelining MAIL, every RCPT and DATA in one flight when the server
// offers PIPELINING, and returns every reply. After a transaction that failed
// before the message was accepted the session sends RSET, so it can be reused for
// the next message to the same destination; quit() ends it politely.
//
// Threading: a Session lives on the executor of the coroutine that opened it and
// must only be used from there; one operation at a time. Every network operation
// has a deadline from Timeouts. Network errors and timeouts are returned as
// error_code values (never thrown); replies are data for the caller to judge.
// This component never includes queue/ or engine/ headers.
#pragma once

#include <utility>  // Boost 1.74 coroutines with g++ 12 need this before Asio

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include "smtp/reply.h"

namespace kurier::smtp {

// RFC 5321 §4.5.3.2 defaults; tests shorten them.
struct Timeouts {
  std::chrono::milliseconds connect{30'000};
  std::chrono::milliseconds greeting{300'000};    // initial 220
  std::chrono::milliseconds ehlo{300'000};
  std::chrono::milliseconds starttls{120'000};    // STARTTLS reply and the TLS handshake
  std::chrono::milliseconds mail{300'000};
  std::chrono::milliseconds rcpt{300'000};
  std::chrono::milliseconds data_init{120'000};   // DATA -> 354
  std::chrono::milliseconds data_block{180'000};  // each write of message content
  std::chrono::milliseconds data_term{600'000};   // final "." -> 250
  std::chrono::milliseconds rset{120'000};
  std::chrono::milliseconds quit{30'000};
};

enum class TlsPolicy {
  disabled,       // never STARTTLS
  opportunistic,  // STARTTLS when offered, no certificate check; if STARTTLS or the
                  // handshake fails, the same target is tried again in plaintext on a new
                  // connection (RFC 7435: failed encryption must not stop delivery)
  required,       // a target that does not offer STARTTLS, or fails it, is skipped
};

// Certificate checks after the TLS handshake. MX certificates are not checked by
// default (RFC 7435); MTA-STS (RFC 8461 §4.2) asks for a chain that verifies against
// the trust store and names the MX host (Target::host, wildcards per RFC 6125).
enum class CertCheck {
  none,     // no check; SessionInfo::tls_verify says "not checked"
  report,   // check and record the result in SessionInfo, never refuse (MTA-STS testing)
  enforce,  // a certificate that does not verify fails the target like a failed handshake
};

struct Target {
  std::string host;     // MX host name (logs, SNI); may be empty
  std::string address;  // IPv4 or IPv6 literal to connect to
};

struct SessionOptions {
  std::string helo_name = "localhost";
  std::uint16_t port = 25;
  TlsPolicy tls = TlsPolicy::opportunistic;
  CertCheck cert_check = CertCheck::none;
  std::string ca_file;  // PEM trust store for cert_check; "" = OpenSSL's default paths
  bool use_pipelining = true;  // pipeline when the server offers PIPELINING
  Timeouts timeouts;
};

struct Extensions {
  bool esmtp = false;  // EHLO accepted (false: HELO fallback)
  bool pipelining = false;
  bool starttls = false;
  bool eight_bit_mime = false;
  bool smtputf8 = false;
  bool size = false;             // SIZE offered: MAIL carries SIZE=n
  std::uint64_t size_limit = 0;  // SIZE parameter; 0 = none announced
};

struct SessionInfo {
  Target target;
  Reply greeting;
  Extensions extensions;  // as announced after STARTTLS when TLS is active
  bool tls = false;
  std::string tls_protocol;  // "TLSv1.3"
  std::string tls_cipher;    // "TLS_AES_256_GCM_SHA384"
  bool tls_fallback = false; // plaintext retry after a failed STARTTLS (opportunistic)
  // With a CertCheck other than none, after a handshake: "verified", or why the
  // certificate did not verify ("hostname mismatch", "unable to get local issuer
  // certificate", "no certificate"). "not checked" otherwise; "" without TLS.
  std::string tls_verify;
  bool tls_verified = false;
};

// The step of an SMTP exchange that failed or was refused, for attempt records and the
// delivery policy (a refusal at MAIL on a reused connection is about the connection).
enum class Phase : std::uint8_t {
  none,
  mta_sts,  // set by the caller: the domain's MTA-STS policy left no MX host to try
  connect,
  greeting,
  ehlo,
  helo,
  starttls,
  mail,
  rcpt,
  data,
  content,  // sending the message text
  final,    // the reply after the final "."
};
std::string_view to_string(Phase phase);  // "connect", "starttls", "mta-sts", ...; "" for none

// Why a target did not give us a usable session.
struct ConnectFailure {
  Target target;
  Phase phase = Phase::none;       // connect, greeting, ehlo, helo, starttls (mta_sts: set by the caller)
  boost::system::error_code error;  // set for network errors, timeouts, TLS failures
  Reply reply;                     // set when the server refused us with a reply
  std::string detail;              // more about `error` when there is more to say
                                   // (the certificate check's result)
};

struct Envelope {
  std::string mail_from;                // without angle brackets; "" = null reverse-path
  std::vector<std::string> recipients;  // without angle brackets
  bool eight_bit = false;               // body has 8-bit data: BODY=8BITMIME when offered
  bool smtputf8 = false;                // UTF-8 addresses: SMTPUTF8 when offered
};

struct TransactionResult {
  Reply mail;
  std::vector<Reply> rcpt;  // one per envelope recipient, in order; code 0 = not reached
  Reply data;               // reply to DATA (354 expected); code 0 = not reached
  Reply final;              // reply after the message content; code 0 = not reached (also
                            // when DATA got 354 but no RCPT was accepted: only "." is sent)
  // Set when the connection failed or timed out mid-transaction (the session is then
  // unusable); error_phase names the step: mail, rcpt, data, content, final.
  boost::system::error_code error;
  Phase error_phase = Phase::none;

  // The reply that decides recipient i: the refusal of MAIL, of its RCPT, of DATA,
  // or the final reply. A reply with code 0 means no decision (see `error`).
  const Reply& outcome_for(std::size_t i) const;
};

class Session {
 public:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const SessionInfo& info() const;
  // Open and in a clean state for a new transaction.
  bool usable() const;
  std::size_t transactions() const;

  // Runs one transaction. `message` is in wire form: CRLF line endings, already
  // dot-stuffed (see to_wire), without the terminating ".\r\n" (a missing final CRLF is
  // added); it must stay alive until the returned awaitable completes. A message over
  // the server's SIZE limit is not sent: MAIL gets a local reply "552 5.3.4 message size
  // exceeds fixed limit". Other local refusals, nothing sent: UTF-8 addresses to a
  // server without SMTPUTF8 (MAIL "553 5.6.7"), a sender containing CR/LF/NUL (MAIL
  // "501 5.1.7"); a recipient containing CR/LF/NUL gets RCPT "501 5.1.3" and is skipped.
  // After a failed transaction RSET is sent; if that fails the session is unusable.
  boost::asio::awaitable<TransactionResult> send(const Envelope& envelope, std::string_view message);

  // Sends QUIT (bounded by timeouts.quit) and closes. Never throws.
  boost::asio::awaitable<void> quit();

 private:
  std::unique_ptr<Impl> impl_;
};

struct OpenResult {
  std::unique_ptr<Session> session;      // null when every target failed
  std::vector<ConnectFailure> failures;  // targets that failed, in order tried
};

// Tries `targets` in order: the next target on connection failure, timeout, a 4xx/5xx
// greeting, EHLO and HELO refused, or a TLS failure. With TlsPolicy::opportunistic a
// target whose STARTTLS or handshake fails is first retried in plaintext (the failure
// is still listed in `failures`; the session has info().tls_fallback set). Runs on the
// caller's executor.
boost::asio::awaitable<OpenResult> open_session(std::vector<Target> targets, SessionOptions options);

// Converts a message to wire form: bare LF and bare CR become CRLF, lines starting
// with '.' get another '.', and the result ends with CRLF.
std::string to_wire(std::string_view message);

}  // namespace kurier::smtp
