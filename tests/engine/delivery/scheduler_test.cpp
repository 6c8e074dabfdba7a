// The scheduler (feeder, workers, ready queues, throttles, outcome policy, result writer)
// against a fake dispatcher (engine/delivery/dispatcher.h): no sockets, no processes,
// a RocksDB store on disk. The fake answers each transaction from a per-domain script
// and records what it saw: sessions open at once, messages per session, recipients sent.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/asio.h"
#include "engine/delivery/delivery.h"
#include "engine/delivery/dispatcher.h"
#include "engine/events/campaign_events.h"
#include "engine/ops/metrics.h"
#include "tests/queue/helpers.h"

namespace kurier::engine {
namespace {

using queue::test::make_campaign;

smtp::Reply make_reply(int code, std::string enhanced, std::string text) {
  smtp::Reply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.text = std::move(text);
  return r;
}

// How the fake destination behaves.
struct DomainScript {
  std::optional<dns::Status> dns_failure;  // the MX lookup fails so
  bool refuse_connect = false;             // every MX address refuses the connection
  // The reply to the n-th transaction to the domain (0-based), over all its sessions.
  std::function<smtp::Reply(int n, int on_connection)> reply = [](int, int) {
    return make_reply(250, "2.0.0", "Ok: queued");
  };
};

// What the fake saw, over every worker.
struct Observed {
  std::mutex mutex;
  std::map<std::string, int> open, max_open;      // sessions per domain
  std::map<std::string, int> transactions;        // per domain
  int max_per_session = 0;
  int in_hand = 0, max_in_hand = 0;               // messages taken, not yet reported
  std::multiset<std::uint32_t> sent;              // recipient ids whose transaction got 250
};

class FakeDispatcher final : public Dispatcher {
 public:
  FakeDispatcher(asio::io_context& io, const std::map<std::string, DomainScript>& scripts, Observed& seen)
      : io_(io), scripts_(scripts), seen_(seen) {}

  asio::awaitable<void> run_session(SessionSlot& slot) override {
    const DomainScript& script = scripts_.at(slot.domain());
    if (script.dns_failure) {
      slot.dns_failed(*script.dns_failure, "scripted");
      co_return;
    }
    if (script.refuse_connect) {
      smtp::ConnectFailure refused;
      refused.target = {"mx." + slot.domain(), "127.0.0.9"};
      refused.phase = smtp::Phase::connect;
      refused.error = make_error_code(boost::system::errc::connection_refused);
      slot.connect_failed({refused}, "opportunistic");
      co_return;
    }
    opened(slot.domain());
    slot.connected();
    int on_connection = 0;
    while (auto job = co_await slot.next_message()) {
      took();
      // A little time on the wire, so that sessions overlap.
      asio::steady_timer wire(io_, std::chrono::milliseconds(2));
      co_await wire.async_wait(asio::use_awaitable);
      const smtp::Reply answer = script.reply(count_transaction(slot.domain()), on_connection++);
      slot.transaction_started();
      queue::Attempt attempt;
      attempt.time_ms = slot.now();
      attempt.mx_host = "mx." + slot.domain();
      attempt.code = answer.code;
      attempt.enhanced = answer.enhanced;
      attempt.text = answer.text;
      const std::uint32_t id = job->recipient.key.recipient;
      returned(answer.code == 250 ? std::optional<std::uint32_t>(id) : std::nullopt);
      if (!slot.transaction_done(std::move(*job), answer, smtp::Phase::none, std::move(attempt))) break;
    }
    closed(slot.domain(), on_connection);
  }

 private:
  void opened(const std::string& domain) {
    std::lock_guard lock(seen_.mutex);
    seen_.max_open[domain] = std::max(seen_.max_open[domain], ++seen_.open[domain]);
  }
  void closed(const std::string& domain, int messages) {
    std::lock_guard lock(seen_.mutex);
    --seen_.open[domain];
    seen_.max_per_session = std::max(seen_.max_per_session, messages);
  }
  void took() {
    std::lock_guard lock(seen_.mutex);
    seen_.max_in_hand = std::max(seen_.max_in_hand, ++seen_.in_hand);
  }
  void returned(std::optional<std::uint32_t> delivered) {
    std::lock_guard lock(seen_.mutex);
    --seen_.in_hand;
    if (delivered) seen_.sent.insert(*delivered);
  }
  int count_transaction(const std::string& domain) {
    std::lock_guard lock(seen_.mutex);
    return seen_.transactions[domain]++;
  }

  asio::io_context& io_;
  const std::map<std::string, DomainScript>& scripts_;
  Observed& seen_;
};

class FakeFactory final : public DispatcherFactory {
 public:
  FakeFactory(const std::map<std::string, DomainScript>& scripts, Observed& seen) : scripts_(scripts), seen_(seen) {}
  std::unique_ptr<Dispatcher> make(asio::io_context& io, dns::MxResolver&) override {
    return std::make_unique<FakeDispatcher>(io, scripts_, seen_);
  }

 private:
  const std::map<std::string, DomainScript>& scripts_;
  Observed& seen_;
};

class SchedulerTest : public queue::test::StoreFixture {
 protected:
  SchedulerTest() {
    config_.engine.workers = 2;
    config_.shaping.defaults.connections = 2;
    config_.shaping.defaults.messages_per_connection = 3;
  }

  // A campaign with `per_domain` recipients at each domain of scripts_, due now; ids
  // run 1..N in domain order.
  queue::CampaignId add_campaign(std::uint32_t per_domain) {
    queue::Campaign campaign = make_campaign("scheduler");
    campaign.created_ms = now_ms_;
    auto writer = store_->begin_campaign(campaign);
    queue::RecipientId id = 0;
    for (const auto& [domain, script] : scripts_)
      for (std::uint32_t i = 0; i < per_domain; ++i) {
        queue::Recipient r = queue::test::make_recipient(++id, now_ms_);
        r.address = "user" + std::to_string(id) + "@" + domain;
        writer->add(r);
      }
    writer->commit();
    total_ = id;
    return writer->id();
  }

  // Runs the engine until every recipient has an outcome and nothing is in flight
  // (deferred ones are due minutes later), or 30 s pass.
  void deliver(queue::CampaignId id) {
    Delivery delivery(*store_, config_, system_now_ms, std::make_unique<FakeFactory>(scripts_, seen_));
    delivery.set_events(events_);
    std::atomic<bool> finished{false};
    std::thread watchdog([&] {
      for (int i = 0; i < 300 && !finished; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!finished) delivery.stop();
    });
    delivery.run([&] { return store_->counts(id).queued == 0 && delivery.progress().in_flight == 0; });
    finished = true;
    watchdog.join();
    throttled_ = 0;
    for (const auto& [domain, script] : scripts_) throttled_ += delivery.metrics().domain(domain).snapshot().throttled;
  }

  std::vector<queue::Recipient> recipients(queue::CampaignId id) {
    std::vector<queue::Recipient> out;
    store_->for_each_recipient(id, [&](const queue::Recipient& r) {
      out.push_back(r);
      return true;
    });
    return out;
  }

  Config config_;
  std::map<std::string, DomainScript> scripts_;
  Observed seen_;
  std::int64_t now_ms_ = system_now_ms();
  std::uint32_t total_ = 0;
  std::uint64_t throttled_ = 0;
  CampaignEvents* events_ = nullptr;
};

// Keeps what the engine logs (the event log's seam).
struct KeptEvents final : EventSink {
  void append(std::span<const EventRecord> events) noexcept override {
    std::lock_guard lock(mutex);
    kept.insert(kept.end(), events.begin(), events.end());
  }
  std::mutex mutex;
  std::vector<EventRecord> kept;
};

TEST_F(SchedulerTest, LogsOneEventPerRecordedOutcomeWithItsAttempt) {
  scripts_ = {{"a.test", DomainScript{}}, {"b.test", DomainScript{}}};
  const auto id = add_campaign(15);
  auto sink = std::make_unique<KeptEvents>();
  KeptEvents* kept = sink.get();
  CampaignEvents events(*store_, std::move(sink), "secret");
  events_ = &events;
  deliver(id);
  ASSERT_EQ(kept->kept.size(), 30u);
  std::set<std::string> recipients;
  for (const auto& e : kept->kept) {
    EXPECT_EQ(e.type, EventType::delivered);
    EXPECT_EQ(e.campaign, "scheduler");
    EXPECT_EQ(e.queued_ms, now_ms_);
    EXPECT_EQ(e.attempt, 1u);
    EXPECT_EQ(e.code, 250);
    EXPECT_EQ(e.mx, "mx." + e.recipient.substr(e.recipient.find('@') + 1));
    EXPECT_TRUE(e.sender.starts_with("b+")) << e.sender;
    recipients.insert(e.recipient);
  }
  EXPECT_EQ(recipients.size(), 30u) << "each event names its own recipient";
}

TEST_F(SchedulerTest, DeliversEveryRecipientOnceWithinTheDestinationsLimits) {
  scripts_ = {{"a.test", DomainScript{}}, {"b.test", DomainScript{}}, {"c.test", DomainScript{}}};
  const auto id = add_campaign(20);
  deliver(id);

  EXPECT_EQ(store_->counts(id).delivered, 60u);
  EXPECT_EQ(seen_.sent.size(), 60u);
  EXPECT_EQ(std::set<std::uint32_t>(seen_.sent.begin(), seen_.sent.end()).size(), 60u) << "a recipient sent twice";
  for (const auto& [domain, max] : seen_.max_open) EXPECT_LE(max, 2) << domain;  // connections = 2
  EXPECT_GE(seen_.max_open["a.test"], 1);
  EXPECT_LE(seen_.max_per_session, 3);  // messages_per_connection = 3
  for (const auto& r : recipients(id)) {
    const auto attempts = store_->attempts(r.key);
    ASSERT_EQ(attempts.size(), 1u) << r.address;
    EXPECT_EQ(attempts[0].classification, "delivered");
    EXPECT_EQ(attempts[0].mx_host, "mx." + r.address.substr(r.address.find('@') + 1));
  }
}

TEST_F(SchedulerTest, TheInFlightWindowBoundsWhatSessionsHold) {
  config_.engine.window = 5;
  config_.shaping.defaults.connections = 10;
  scripts_ = {{"a.test", DomainScript{}}, {"b.test", DomainScript{}}, {"c.test", DomainScript{}}, {"d.test", DomainScript{}}};
  const auto id = add_campaign(10);
  deliver(id);
  EXPECT_EQ(store_->counts(id).delivered, 40u);
  EXPECT_LE(seen_.max_in_hand, 5);
  EXPECT_GE(seen_.max_in_hand, 1);
}

TEST_F(SchedulerTest, ThrottlingRepliesPutRecipientsBackWithoutCountingAnAttempt) {
  DomainScript slow;
  slow.reply = [](int n, int) {
    return n < 2 ? make_reply(421, "4.7.0", "Too many connections from your IP, slow down")
                 : make_reply(250, "2.0.0", "Ok");
  };
  scripts_ = {{"slow.test", slow}};
  const auto id = add_campaign(6);
  deliver(id);

  EXPECT_EQ(store_->counts(id).delivered, 6u);
  EXPECT_EQ(seen_.transactions["slow.test"], 8);  // 2 throttled + 6 delivered
  EXPECT_EQ(throttled_, 2u);
  for (const auto& r : recipients(id)) {
    const auto attempts = store_->attempts(r.key);
    ASSERT_EQ(attempts.size(), 1u) << r.address;
    EXPECT_EQ(attempts[0].code, 250);
  }
}

TEST_F(SchedulerTest, AReusedConnectionRefusedAtMailGoesBackToTheQueue) {
  DomainScript closing;
  // The server takes one message per connection, then says 421 to the next MAIL.
  closing.reply = [](int, int on_connection) {
    return on_connection == 0 ? make_reply(250, "2.0.0", "Ok")
                              : make_reply(421, "4.4.2", "closing connection, come back later");
  };
  scripts_ = {{"one.test", closing}};
  config_.shaping.throttle.clear();
  const auto id = add_campaign(5);
  deliver(id);

  EXPECT_EQ(store_->counts(id).delivered, 5u);
  for (const auto& r : recipients(id)) EXPECT_EQ(store_->attempts(r.key).size(), 1u) << r.address;
}

TEST_F(SchedulerTest, DnsFailuresBounceOrDeferTheWholeDestination) {
  DomainScript nx;
  nx.dns_failure = dns::Status::nxdomain;
  DomainScript servfail;
  servfail.dns_failure = dns::Status::temporary;
  scripts_ = {{"gone.test", nx}, {"flaky.test", servfail}, {"fine.test", DomainScript{}}};
  const auto id = add_campaign(4);
  deliver(id);

  const auto counts = store_->counts(id);
  EXPECT_EQ(counts.delivered, 4u);
  EXPECT_EQ(counts.bounced, 4u);
  EXPECT_EQ(counts.deferred, 4u);
  for (const auto& r : recipients(id)) {
    if (r.address.ends_with("@gone.test")) {
      EXPECT_EQ(r.status.state, queue::State::bounced);
      EXPECT_EQ(r.status.reason, "hostunknown");
      EXPECT_EQ(r.status.enhanced, "5.1.2");
    } else if (r.address.ends_with("@flaky.test")) {
      EXPECT_EQ(r.status.state, queue::State::deferred);
      EXPECT_EQ(r.status.reason, "networkerror");
      EXPECT_GT(r.status.next_attempt_ms, now_ms_ + 60'000);  // on the retry schedule (5 min)
    }
  }
  EXPECT_TRUE(seen_.max_open.count("gone.test") == 0) << "no session may connect to a failed destination";
}

TEST_F(SchedulerTest, ARefusingSiteDefersItsQueue) {
  DomainScript down;
  down.refuse_connect = true;
  scripts_ = {{"down.test", down}};
  const auto id = add_campaign(6);
  deliver(id);

  EXPECT_EQ(store_->counts(id).deferred, 6u);
  for (const auto& r : recipients(id)) {
    const auto attempts = store_->attempts(r.key);
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ(attempts[0].text.rfind("connect: ", 0), 0u) << attempts[0].text;
    EXPECT_EQ(attempts[0].mx_address, "127.0.0.9");
    EXPECT_EQ(attempts[0].classification, "deferred networkerror");
  }
}

TEST_F(SchedulerTest, HardBouncesSuppressTheAddress) {
  DomainScript unknown;
  unknown.reply = [](int, int) { return make_reply(550, "5.1.1", "User unknown"); };
  scripts_ = {{"x.test", unknown}};
  const auto id = add_campaign(3);
  deliver(id);

  EXPECT_EQ(store_->counts(id).bounced, 3u);
  for (const auto& r : recipients(id)) {
    EXPECT_EQ(r.status.category, "hard");
    EXPECT_TRUE(store_->suppression(r.address).has_value()) << r.address;
  }
}

}  // namespace
}  // namespace kurier::engine
