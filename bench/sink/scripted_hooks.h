// kurier-sink's answers at each stage of the shared SMTP server dialogue: the script's
// rules, limits (messages per connection and per second), stats, the message store and
// the fault a rule asks for.
//
// Contract: one ScriptedHooks per connection, owned by its session, on the session's
// worker thread. It only decides and writes replies into the dialogue; a fault is
// recorded (pending_fault()) for the session to carry out once the replies before it
// are written. Nothing throws; a store failure is answered 451 and logged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bench/sink/script.h"
#include "bench/sink/stats.h"
#include "bench/sink/store.h"
#include "common/asio.h"
#include "smtp/server_session.h"

namespace kurier::sink {

// State shared by every session; owned by the server, outlives all sessions.
struct SinkShared {
  const Script* script = nullptr;
  RuleMatcher* rules = nullptr;
  Stats* stats = nullptr;
  MessageStore* store = nullptr;       // nullptr: messages are counted, not stored
  asio::ssl::context* tls = nullptr;   // nullptr: STARTTLS not offered
};

// One local listen address as the sessions on it see it.
struct ListenInfo {
  std::string ip;                  // canonical: rule filter, store directory, stats key
  AddressStats* stats = nullptr;
};

// The dialogue options of the sink: lenient line lengths, the script's size limit.
smtp::DialogueOptions sink_dialogue_options(const SinkShared& shared);

class ScriptedHooks final : public smtp::ServerHooks {
 public:
  ScriptedHooks(const SinkShared& shared, const ListenInfo& listen, const std::string& peer)
      : shared_(shared), listen_(listen), script_(*shared.script), peer_(peer) {}

  bool greeting(smtp::ServerDialogue& d) override;
  bool hello(bool extended, smtp::ServerDialogue& d) override;
  bool transaction_allowed(smtp::ServerDialogue& d) override;
  bool mail(const smtp::Path& path, smtp::ServerDialogue& d) override;
  bool rcpt(std::string_view address, smtp::ServerDialogue& d) override;
  bool data(smtp::ServerDialogue& d) override;
  void content_begins(smtp::ServerDialogue& d) override;
  void message(smtp::ServerDialogue& d) override;
  void starttls(std::string_view args, smtp::ServerDialogue& d) override;
  void too_many_recipients() override;

  void set_tls_active() { tls_active_ = true; }
  Fault pending_fault() const { return fault_; }
  int fault_code() const { return fault_code_; }       // reply code for long_line / endless
  std::uint32_t messages() const { return messages_; }  // accepted on this connection

 private:
  // Renders a rule's reply; a rule with close = true, or any 421, closes the connection.
  // A rule with a fault replaces or follows the reply with the fault (see Fault).
  void reply(const Rule& rule, std::string_view rcpt, smtp::ServerDialogue& d);
  Substitutions values(std::string_view rcpt, const smtp::ServerDialogue& d) const {
    return {rcpt, d.sender(), d.helo().empty() ? std::string_view(peer_) : d.helo()};
  }

  const SinkShared& shared_;
  const ListenInfo& listen_;
  const Script& script_;
  const std::string& peer_;
  bool tls_active_ = false;
  Fault fault_ = Fault::kNone;
  int fault_code_ = 250;
  std::uint32_t messages_ = 0;
  const Rule* content_fault_ = nullptr;  // a content-stage rule for the message arriving
  std::vector<std::string_view> rcpt_views_;
};

}  // namespace kurier::sink
