// The server side of an SMTP dialogue (RFC 5321), without I/O: a bounded line buffer,
// the parsing of commands and paths, and the EHLO/HELO/MAIL/RCPT/DATA/RSET/NOOP/QUIT/
// VRFY/STARTTLS state machine with dot-unstuffing and a size bound for DATA.
//
// Contract: the transport (socket, TLS, timeouts, delays) belongs to the user. It reads
// bytes into a LineBuffer, calls ServerDialogue::handle_next() until it returns false,
// writes output() and clears it, then honours closing() / starting_tls(). At each stage
// the dialogue asks a ServerHooks object what to answer: kurier-sink answers from its
// script, the bounce listener from its domain filter and bounce applier. The protocol
// errors (sequence, syntax, line length, size) are answered here, the same for every user.
//
// Threading: none inside; one dialogue, its buffer and its hooks stay on the thread of
// their connection. Pure functions (split_command, parse_path, size_parameter,
// unstuff) are safe anywhere. Nothing throws except std::bad_alloc and the hooks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::smtp {

// ---- Pure parsing -------------------------------------------------------------------

// "MAIL FROM:<a@b>" -> verb "MAIL", args "FROM:<a@b>" (spaces and tabs trimmed).
struct Command {
  std::string_view verb;
  std::string_view args;
};
Command split_command(std::string_view line);

// The argument of MAIL ("FROM:") or RCPT ("TO:"): the address without its angle
// brackets and source route, and the ESMTP parameters after it. Both view the
// argument text given to parse_path().
struct Path {
  std::string_view address;
  std::string_view params;  // " SIZE=10 BODY=8BITMIME", leading space kept
};
// Lenient, as real clients need: spaces after the colon, no angle brackets (the
// address then ends at the first space), source routes "<@a,@b:user@d>" (dropped).
// nullopt if the keyword is missing, a '<' has no '>', or a source route has no ':'.
std::optional<Path> parse_path(std::string_view args, std::string_view keyword);

// The SIZE=n parameter of MAIL FROM (RFC 1870), or 0 if absent or not a number.
std::uint64_t size_parameter(std::string_view params);

// One DATA line with its line end: the line after dot-unstuffing (RFC 5321 §4.5.2),
// or nullopt for the end-of-data line ".".
std::optional<std::string_view> unstuff(std::string_view line);

// ---- Input ----------------------------------------------------------------------------

// Bytes read from the client, cut into lines. A line longer than the caller's limit is
// reported once (too_long) instead of growing the buffer without bound.
class LineBuffer {
 public:
  // `max_line`: the largest limit next() will be called with; the buffer never grows
  // beyond one such line plus one read.
  explicit LineBuffer(std::size_t max_line);

  // Room for the next read (at least kMinReadSpace bytes unless the buffer is full of
  // one over-long line); then commit() the bytes read.
  std::span<char> space();
  void commit(std::size_t n);

  enum class Next { line, none, too_long };
  // The next complete line, with its line end ("\n" or "\r\n"). too_long: more than
  // `limit` + 2 bytes arrived without a line end (the bytes stay; see skip_line()).
  Next next(std::string_view& line, std::size_t limit);
  // Drops the buffered part of an over-long line and, later, the rest of it up to and
  // including its line end.
  void skip_line();
  // Drops everything buffered (RFC 3207 §5: input pipelined before TLS is discarded).
  void clear();

 private:
  std::vector<char> buf_;
  std::size_t max_buffer_;
  std::size_t begin_ = 0, scan_ = 0, end_ = 0;  // [begin_, end_) unread; no '\n' in [begin_, scan_)
  bool skipping_ = false;
};

// ---- The dialogue ---------------------------------------------------------------------

class ServerDialogue;

// What a user of the dialogue decides. Each hook answers through the dialogue
// (reply(), error(), output(), close(), start_tls()); a hook returning bool says
// whether the step succeeded (the client is greeted, the sender or recipient is taken,
// the content may follow).
class ServerHooks {
 public:
  virtual ~ServerHooks() = default;
  // The greeting (220 ...). false: the client may only QUIT (503 for anything else).
  virtual bool greeting(ServerDialogue& d) = 0;
  // EHLO / HELO with a non-empty name (d.helo()).
  virtual bool hello(bool extended, ServerDialogue& d) = 0;
  // Before MAIL FROM is parsed: connection-wide limits (answer and close to refuse).
  virtual bool transaction_allowed(ServerDialogue&) { return true; }
  // A well-formed MAIL FROM within the size limit; d.sender() is set.
  virtual bool mail(const Path& path, ServerDialogue& d) = 0;
  // A well-formed RCPT TO within the recipient limit.
  virtual bool rcpt(std::string_view address, ServerDialogue& d) = 0;
  // DATA with a sender and recipients: answer 354 and return true to receive content.
  virtual bool data(ServerDialogue& d) = 0;
  // The first content line arrived; d.abandon_message() and a reply refuse it.
  virtual void content_begins(ServerDialogue&) {}
  // The content ended within the limits: d.sender(), d.recipients(), d.message().
  virtual void message(ServerDialogue& d) = 0;
  virtual void starttls(std::string_view args, ServerDialogue& d) = 0;
  // Notifications: 452 for one recipient too many; 552 for a message too big (SIZE=
  // of MAIL FROM or the content itself).
  virtual void too_many_recipients() {}
  virtual void oversized() {}
};

struct DialogueOptions {
  // RFC 5321 §4.5.3.1.4 asks for 512 octets; extensions and lenient clients need more.
  std::size_t max_command_line = 2048;
  // RFC 5321 §4.5.3.1.6 says 1000 octets; real mail breaks that. A longer line is
  // skipped and the message refused with 500 once its end arrives.
  std::size_t max_data_line = 1u << 20;
  // Largest message (SIZE= of MAIL and the content after unstuffing); 0: no limit.
  std::uint64_t max_message_bytes = 0;
  // RFC 5321 §4.5.3.1.8 requires at least 100; beyond, 452 (the client retries them).
  std::size_t max_recipients = 100;
  // error() replies before "421 too many errors" and the end; 0: never.
  int max_errors = 0;
  bool keep_message = true;      // false: the content is counted, not kept
  bool crlf_line_ends = false;   // true: content lines end in CRLF even when sent with LF
  std::string help;              // the HELP reply; empty: HELP is not recognized
  std::vector<std::string> unimplemented;  // verbs answered 502 (others: 500)
};

class ServerDialogue {
 public:
  ServerDialogue(ServerHooks& hooks, DialogueOptions options);

  // Asks the hooks for the greeting. Call once, before the first handle_next().
  void start();
  // Takes the next complete line out of `in` and handles it; false if there is none
  // (read more) or the dialogue is closing or starting TLS.
  bool handle_next(LineBuffer& in);
  // After the TLS handshake: RFC 3207 §4.2, forget the client's name and transaction.
  void tls_started();

  // Output: replies not yet written; the transport writes and clears it.
  std::string& output() { return out_; }
  void reply(std::string_view line);  // appends line + CRLF
  void error(std::string_view line);  // a reply counted toward max_errors
  void close() { closing_ = true; }   // close after writing output()
  void start_tls() { starttls_ = true; }  // start TLS after writing output()
  bool closing() const { return closing_; }
  bool starting_tls() const { return starttls_; }

  // Leaves DATA and ends the transaction (a content_begins() refusal).
  void abandon_message();

  // Dialogue state for the hooks.
  std::string_view helo() const { return helo_; }
  std::string_view sender() const { return sender_; }
  std::span<const std::string> recipients() const { return {rcpts_.data(), rcpt_count_}; }
  std::string& message() { return message_; }
  bool in_data() const { return in_data_; }
  const DialogueOptions& options() const { return options_; }

 private:
  void command(std::string_view line);
  void content(std::string_view line);
  void end_of_data();
  void hello(std::string_view args, bool extended);
  void mail(std::string_view args);
  void rcpt(std::string_view args);
  void data(std::string_view args);
  void reset_transaction();

  ServerHooks& hooks_;
  const DialogueOptions options_;
  std::string out_;
  bool closing_ = false;
  bool starttls_ = false;
  int errors_ = 0;

  bool greeting_refused_ = false;
  bool greeted_ = false;
  std::string helo_;
  // Transaction; strings are reused across transactions to avoid allocations.
  bool has_mail_ = false;
  std::string sender_;
  std::vector<std::string> rcpts_;
  std::size_t rcpt_count_ = 0;
  bool in_data_ = false;
  bool first_line_ = false;
  std::string message_;
  std::uint64_t message_size_ = 0;
  bool too_big_ = false;
  bool line_too_long_ = false;
};

}  // namespace kurier::smtp
