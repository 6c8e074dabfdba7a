// kurier-sink's replies at each stage of the SMTP dialogue, decided by the script's
// rules. Runs on the session's worker thread. A store failure is answered 451 and
// logged; nothing throws.
#include "bench/sink/scripted_hooks.h"

#include <cerrno>
#include <cstring>
#include <iterator>

#include "common/log.h"

namespace kurier::sink {
namespace {

// Longest line accepted, in commands and in message content (RFC 5321 asks for 1000
// octets; real mail has longer lines and the sink is meant to be lenient).
constexpr std::size_t kMaxLineLength = 64 * 1024;
// RFC 5321 §4.5.3.1.8 requires at least 100; beyond this, 452 (the client retries them).
constexpr std::size_t kMaxRecipients = 1000;

// Fault modes (script rules with `fault`): what a hostile or broken peer sends.
// An HTTP server answering on port 25, with a NUL and bytes that are not UTF-8.
constexpr char kGarbageBytes[] = "HTTP/1.1 400 Bad Request\r\nServer: not-smtp\r\n\r\n\0\xff\xfe<html>\r\n";
constexpr std::string_view kGarbageReply{kGarbageBytes, sizeof kGarbageBytes - 1};
// "A 1 MB reply line": far beyond any client's line limit, so the client must cut it.
constexpr std::size_t kLongReplyLineBytes = 1024 * 1024;

bool positive(int code) { return code >= 200 && code < 300; }

const auto& logger() {
  static const auto instance = log::get("sink");
  return instance;
}

}  // namespace

smtp::DialogueOptions sink_dialogue_options(const SinkShared& shared) {
  smtp::DialogueOptions options;
  options.max_command_line = kMaxLineLength;
  options.max_data_line = kMaxLineLength;
  options.max_message_bytes = shared.script->size_limit;
  options.max_recipients = kMaxRecipients;
  options.keep_message = shared.store != nullptr;
  options.help = "214 2.0.0 kurier-sink: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS";
  return options;
}

bool ScriptedHooks::greeting(smtp::ServerDialogue& d) {
  if (const Rule* rule = shared_.rules->find(Stage::kConnect, listen_.ip, std::string_view{})) {
    reply(*rule, {}, d);
    return positive(rule->reply.code());
  }
  script_.greeting.render(d.output(), values({}, d));
  return true;
}

bool ScriptedHooks::hello(bool extended, smtp::ServerDialogue& d) {
  if (const Rule* rule = shared_.rules->find(Stage::kEhlo, listen_.ip, std::string_view{})) {
    reply(*rule, {}, d);
    return positive(rule->reply.code());
  }
  if (!extended) {
    d.reply("250 kurier-sink");
    return true;
  }
  std::string size = "SIZE";
  if (script_.size_limit != 0) size += ' ' + std::to_string(script_.size_limit);
  const std::string_view lines[] = {
      script_.pipelining ? "PIPELINING" : "",
      size,
      script_.eight_bit_mime ? "8BITMIME" : "",
      script_.smtputf8 ? "SMTPUTF8" : "",
      shared_.tls && !tls_active_ ? "STARTTLS" : "",
      "ENHANCEDSTATUSCODES",
  };
  std::string& out = d.output();
  out += "250-kurier-sink Hello ";
  out += d.helo();
  for (std::size_t i = 0; i < std::size(lines); ++i) {
    if (lines[i].empty()) continue;
    out += i + 1 < std::size(lines) ? "\r\n250-" : "\r\n250 ";
    out += lines[i];
  }
  out += "\r\n";
  return true;
}

bool ScriptedHooks::transaction_allowed(smtp::ServerDialogue& d) {
  if (script_.max_messages_per_connection != 0 && messages_ >= script_.max_messages_per_connection) {
    d.reply("421 4.7.0 Too many messages, closing");
    d.close();
    return false;
  }
  if (!shared_.stats->mail_allowed(*listen_.stats, script_.max_messages_per_second)) {
    d.reply("421 4.7.0 Rate limit exceeded, too many messages per second, try again later");
    d.close();
    return false;
  }
  return true;
}

bool ScriptedHooks::mail(const smtp::Path& path, smtp::ServerDialogue& d) {
  if (const Rule* rule = shared_.rules->find(Stage::kMail, listen_.ip, path.address)) {
    reply(*rule, {}, d);
    return positive(rule->reply.code());
  }
  d.reply("250 2.1.0 Ok");
  return true;
}

bool ScriptedHooks::rcpt(std::string_view address, smtp::ServerDialogue& d) {
  int code = 250;
  if (const Rule* rule = shared_.rules->find(Stage::kRcpt, listen_.ip, address)) {
    code = rule->reply.code();
    reply(*rule, address, d);
  } else {
    d.reply("250 2.1.5 Ok");
  }
  shared_.stats->recipient_reply(code);
  return positive(code);
}

void ScriptedHooks::too_many_recipients() { shared_.stats->recipient_reply(452); }

bool ScriptedHooks::data(smtp::ServerDialogue& d) {
  if (const Rule* rule = shared_.rules->find(Stage::kData, listen_.ip, std::string_view{})) {
    reply(*rule, {}, d);
    if (rule->reply.code() != 354) return false;
  } else {
    d.reply("354 End data with <CR><LF>.<CR><LF>");
  }
  content_fault_ = nullptr;
  if (shared_.rules->has_rules(Stage::kContent)) {
    const auto rcpts = d.recipients();
    rcpt_views_.assign(rcpts.begin(), rcpts.end());
    content_fault_ = shared_.rules->find(Stage::kContent, listen_.ip, rcpt_views_);
  }
  return true;
}

void ScriptedHooks::content_begins(smtp::ServerDialogue& d) {
  if (!content_fault_) return;
  const Rule& rule = *content_fault_;
  content_fault_ = nullptr;
  d.abandon_message();
  reply(rule, {}, d);
}

void ScriptedHooks::message(smtp::ServerDialogue& d) {
  const auto rcpts = d.recipients();
  rcpt_views_.assign(rcpts.begin(), rcpts.end());
  std::string_view matched;
  const Rule* rule = shared_.rules->find(Stage::kMessage, listen_.ip, rcpt_views_, &matched);
  const int code = rule ? rule->reply.code() : 250;
  if (positive(code) && shared_.store && !shared_.store->store(listen_.ip, d.sender(), rcpts, d.message())) {
    logger()->error("store failed dir={} local={} error={}", shared_.store->root().string(), listen_.ip,
                    std::strerror(errno));
    d.reply("451 4.3.0 Error: cannot store message");
    return;
  }
  if (positive(code)) {
    shared_.stats->message_accepted(*listen_.stats);
    ++messages_;
  }
  if (rule)
    reply(*rule, matched, d);
  else
    d.reply("250 2.0.0 Ok: queued");
}

void ScriptedHooks::starttls(std::string_view args, smtp::ServerDialogue& d) {
  if (!shared_.tls) return d.error("502 5.5.1 Error: command not implemented");
  if (tls_active_) return d.error("503 5.5.1 Error: TLS already active");
  if (!args.empty()) return d.error("501 5.5.4 Syntax: STARTTLS");
  if (const Rule* rule = shared_.rules->find(Stage::kStarttls, listen_.ip, std::string_view{})) {
    reply(*rule, {}, d);
    if (rule->fault == Fault::kNone && rule->reply.code() == 220 && !d.closing()) d.start_tls();
    return;
  }
  d.reply("220 2.0.0 Ready to start TLS");
  d.start_tls();
}

void ScriptedHooks::reply(const Rule& rule, std::string_view rcpt, smtp::ServerDialogue& d) {
  std::string& out = d.output();
  switch (rule.fault) {
    case Fault::kNone:
      rule.reply.render(out, values(rcpt, d));
      if (rule.close || rule.reply.code() == 421) d.close();
      return;
    case Fault::kGarbage:
      shared_.stats->fault_injected();
      out.append(kGarbageReply);
      if (rule.close) d.close();
      return;
    case Fault::kLongLine:
      shared_.stats->fault_injected();
      out += std::to_string(rule.reply.empty() ? 250 : rule.reply.code());
      out += ' ';
      out.append(kLongReplyLineBytes, 'x');
      out += "\r\n";
      if (rule.close) d.close();
      return;
    case Fault::kReset:
      if (!rule.reply.empty()) rule.reply.render(out, values(rcpt, d));
      break;
    case Fault::kBadTls:
      if (rule.reply.empty())
        out += "220 2.0.0 Ready to start TLS\r\n";
      else
        rule.reply.render(out, values(rcpt, d));
      break;
    case Fault::kDrop:
    case Fault::kHang:
    case Fault::kEndless:
      break;  // no reply
  }
  // The dialogue stops handling input; the session writes what is queued, then the fault.
  fault_ = rule.fault;
  fault_code_ = rule.reply.empty() ? 250 : rule.reply.code();
  d.close();
}

}  // namespace kurier::sink
