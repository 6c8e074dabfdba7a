// SMTP sessions for the scheduler (engine/delivery/smtp_dispatcher.h): reach the
// destination, then one message loop per connection. Runs on a worker's thread; DKIM
// signatures on the factory's signing pool. Network and DNS failures are reported to the
// slot; a signing failure defers its message.
#include "engine/delivery/smtp_dispatcher.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "common/asio.h"
#include "common/log.h"
#include "engine/core/verp.h"
#include "engine/delivery/compose.h"
#include "engine/delivery/mta_sts.h"
#include "engine/delivery/resolve.h"
#include "engine/delivery/tls_policy.h"
#include "engine/intake/address.h"
#include "smtp/client.h"

namespace kurier::engine {
namespace {

// MX addresses tried per session (Postfix: smtp_mx_address_limit = 5); more only
// delays the deferral when a whole site is down.
constexpr std::size_t kMaxTargets = 10;

// What every worker's sessions share.
struct SmtpShared {
  SmtpShared(const Config& config_in, Clock clock_in)
      : config(config_in), clock(std::move(clock_in)), verp(required_verp_secret(config_in)) {
    options.helo_name = config.smtp.helo;
    options.port = config.smtp.port;
    options.tls = config.smtp.tls;
    options.timeouts = config.smtp.timeouts;
    options.ca_file = config.mta_sts.ca_file;
  }
  const Config& config;
  Clock clock;
  Verp verp;
  smtp::SessionOptions options;  // per session: tls and cert_check from the TLS plan
  std::shared_ptr<spdlog::logger> log = kurier::log::get("engine");
  // RSA signatures take about a millisecond: they run here, never on a worker's
  // event loop, which keeps serving every other session meanwhile.
  asio::thread_pool signing_pool{std::max(1u, std::thread::hardware_concurrency())};
  // MTA-STS policies, cached per domain for every worker (engine/delivery/mta_sts.h).
  MtaSts mta_sts{config.mta_sts, dns::ResolverOptions{config.dns.servers, config.dns.timeout}};
};

// What one session keeps: sessions of a dispatcher interleave on its thread.
struct SessionState {
  TlsPlan tls;
  std::string message;  // reused for every message of the session
};

class SmtpDispatcher final : public Dispatcher {
 public:
  SmtpDispatcher(SmtpShared& shared, dns::MxResolver& resolver) : shared_(shared), resolver_(resolver) {}

  asio::awaitable<void> run_session(SessionSlot& slot) override {
    SessionState state;
    std::unique_ptr<smtp::Session> session = co_await reach(slot, state.tls);
    if (!session) co_return;
    slot.connected();
    co_await deliver(slot, *session, state);
    co_await session->quit();
  }

 private:
  // MX lookup, the TLS plan (MTA-STS or the configured policy), connect. Null when the
  // destination failed (already reported to the slot) or is no longer wanted.
  asio::awaitable<std::unique_ptr<smtp::Session>> reach(SessionSlot& slot, TlsPlan& tls) {
    dns::MxResult mx = co_await resolve_mx(resolver_, slot.domain());
    if (mx.status != dns::Status::ok) {
      slot.dns_failed(mx.status, mx.detail);
      co_return nullptr;
    }
    std::vector<smtp::Target> targets;
    for (const auto& host : mx.hosts)
      for (const auto& address : host.addresses)
        if (targets.size() < kMaxTargets) targets.push_back({host.name, address});
    if (targets.empty()) {
      slot.dns_failed(dns::Status::temporary, "no MX host has an address");
      co_return nullptr;
    }
    std::optional<StsPolicy> sts = co_await sts_policy(slot.domain());
    tls = plan_tls(slot.limits().tls.value_or(shared_.config.smtp.tls), sts, std::move(targets));
    if (!slot.wanted()) co_return nullptr;
    if (!tls.refused.empty()) {
      smtp::ConnectFailure refused;
      refused.phase = smtp::Phase::mta_sts;
      refused.detail = tls.refused;
      slot.connect_failed({refused}, tls.label);
      co_return nullptr;
    }
    smtp::SessionOptions options = shared_.options;
    options.tls = tls.tls;
    options.cert_check = tls.cert_check;
    smtp::OpenResult opened = co_await smtp::open_session(tls.targets, options);
    if (!opened.session) slot.connect_failed(opened.failures, tls.label);
    co_return std::move(opened.session);
  }

  // TLS: the destination's policy (shaping.toml `tls`, else [smtp] tls), unless the
  // domain publishes MTA-STS (RFC 8461), which may narrow the MX hosts and demand
  // verified TLS. The policy lookup is asynchronous and cached.
  asio::awaitable<std::optional<StsPolicy>> sts_policy(const std::string& domain) {
    if (!shared_.mta_sts.options().enabled) co_return std::nullopt;
    StsLookup found = co_await shared_.mta_sts.lookup(
        domain, [this](std::string host) { return host_addresses(resolver_, std::move(host)); });
    shared_.log->debug("event=mta_sts domain={} policy={} detail=\"{}\"", domain,
                       found.policy ? to_string(found.policy->mode) : "none", found.detail);
    co_return std::move(found.policy);
  }

  // The message loop of one connection.
  asio::awaitable<void> deliver(SessionSlot& slot, smtp::Session& session, SessionState& state) {
    const auto& info = session.info();
    // Protocol and cipher (or plaintext, and why), the policy applied and the
    // certificate check, in every attempt the session carries.
    const std::string tls_detail = describe_tls(state.tls, info);
    while (session.usable()) {
      std::optional<Job> job = co_await slot.next_message();
      if (!job) break;
      if (!co_await compose(slot, *job, state.message)) continue;
      smtp::Envelope envelope;
      envelope.mail_from = shared_.verp.address({job->recipient.key.campaign, job->recipient.key.recipient},
                                                job->campaign->campaign.verp_domain);
      // RCPT TO with the domain's A-labels: an IDN domain alone does not need SMTPUTF8.
      envelope.recipients = {ascii_address(job->recipient.address)};
      const MessageNeeds needs = message_needs(*job->campaign, envelope.recipients.front(), state.message);
      envelope.eight_bit = needs.eight_bit;
      envelope.smtputf8 = needs.smtputf8;

      slot.transaction_started();
      smtp::TransactionResult result = co_await session.send(envelope, state.message);
      const smtp::Reply& reply = result.outcome_for(0);
      queue::Attempt attempt;
      attempt.time_ms = slot.now();
      attempt.mx_host = info.target.host;
      attempt.mx_address = info.target.address;
      attempt.tls = info.tls;
      attempt.tls_detail = tls_detail;
      attempt.code = reply.code;
      attempt.enhanced = reply.enhanced;
      attempt.text = reply.code ? reply.text
                                : std::string(smtp::to_string(result.error_phase)) + ": " +
                                      (result.error ? result.error.message() : "no reply");
      if (!slot.transaction_done(std::move(*job), reply, result.error_phase, std::move(attempt))) break;
    }
  }

  // Renders the job's message into `message` and signs it; false (the job recorded as
  // deferred) when its campaign's keys cannot sign.
  asio::awaitable<bool> compose(SessionSlot& slot, Job& job, std::string& message) {
    const CampaignContext& ctx = *job.campaign;
    composer_.render(job, slot.now(), message);
    if (!ctx.signer && ctx.signer_error.empty()) co_return true;
    std::string failure = ctx.signer_error;
    if (failure.empty()) {
      try {
        message.insert(0, co_await sign_on_pool(shared_.signing_pool, ctx.signer, message));
        co_return true;
      } catch (const std::exception& e) {
        failure = e.what();
      }
    }
    queue::Attempt attempt;
    attempt.time_ms = slot.now();
    attempt.text = "DKIM signing failed: " + failure;
    Classification deferred;
    deferred.category = bounce::Category::soft;
    deferred.reason = "systemerror";
    slot.record(std::move(job), deferred, std::move(attempt));
    co_return false;
  }

  SmtpShared& shared_;
  dns::MxResolver& resolver_;
  MessageComposer composer_;  // render() never suspends: one per dispatcher serves all its sessions
};

class SmtpDispatcherFactory final : public DispatcherFactory {
 public:
  SmtpDispatcherFactory(const Config& config, Clock clock) : shared_(config, std::move(clock)) {}

  std::unique_ptr<Dispatcher> make(asio::io_context&, dns::MxResolver& resolver) override {
    return std::make_unique<SmtpDispatcher>(shared_, resolver);
  }
  // Signatures still being computed post their results to the workers: let them
  // finish while the workers' io_contexts still exist.
  void drain() override { shared_.signing_pool.join(); }

 private:
  SmtpShared shared_;
};

}  // namespace

std::unique_ptr<DispatcherFactory> make_smtp_dispatcher_factory(const Config& config, Clock clock) {
  return std::make_unique<SmtpDispatcherFactory>(config, std::move(clock));
}

}  // namespace kurier::engine
