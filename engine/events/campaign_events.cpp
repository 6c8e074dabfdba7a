// Turns queue records into event log lines (contract in campaign_events.h). Called on
// the delivery result writer, intake and bounce threads; store errors are logged,
// never thrown into them.
#include "engine/events/campaign_events.h"

#include <vector>

#include "common/log.h"
#include "engine/core/config.h"
#include "engine/core/verp.h"
#include "engine/events/event_log.h"

namespace kurier::engine {
namespace {

// Intake events written per append(): bounds memory on a million-recipient campaign.
constexpr std::size_t kIntakeBatch = 10000;

void log_failure(const char* during, const std::exception& e) {
  log::get("events")->warn("event=events_failed during={} error=\"{}\"", during, e.what());
}

}  // namespace

CampaignEvents::CampaignEvents(queue::Store& store, std::unique_ptr<EventSink> sink, const std::string& verp_secret,
                               bool intake_events)
    : store_(store),
      sink_(std::move(sink)),
      verp_(verp_secret.empty() ? nullptr : std::make_unique<const Verp>(verp_secret)),
      intake_events_(intake_events) {}

CampaignEvents::~CampaignEvents() = default;

std::optional<CampaignEvents::Known> CampaignEvents::known(queue::CampaignId id) {
  std::lock_guard lock(mutex_);
  if (auto it = campaigns_.find(id); it != campaigns_.end()) return it->second;
  auto campaign = store_.campaign(id);
  if (!campaign) return std::nullopt;
  return campaigns_.emplace(id, Known{facts_of(*campaign), campaign->verp_domain}).first->second;
}

std::optional<CampaignFacts> CampaignEvents::facts(queue::CampaignId id) noexcept {
  try {
    if (auto k = known(id)) return k->facts;
  } catch (const std::exception& e) {
    log_failure("facts", e);
  }
  return std::nullopt;
}

void CampaignEvents::operator_action(queue::CampaignId campaign, std::string_view action, const std::string& reason,
                                     std::int64_t now_ms) noexcept {
  CampaignFacts campaign_facts;
  if (campaign != 0) {
    auto known_facts = facts(campaign);
    if (!known_facts) return;
    campaign_facts = std::move(*known_facts);
  }
  try {
    queue::Recipient nobody;
    nobody.key.campaign = campaign;
    const EventRecord e = admin_event(nobody, campaign_facts, action, reason, now_ms);
    append(std::span(&e, 1));
  } catch (const std::exception& e) {
    log_failure("operator action", e);
  }
}

std::string CampaignEvents::sender(queue::RecipientKey key, const std::string& verp_domain) const {
  return verp_ ? verp_->address({key.campaign, key.recipient}, verp_domain) : "";
}

void CampaignEvents::recorded(std::span<const queue::Outcome> batch, std::span<const std::string> addresses,
                              std::int64_t now_ms) noexcept {
  try {
    std::vector<EventRecord> events;
    events.reserve(batch.size());
    std::optional<Known> campaign;
    queue::CampaignId current = 0;  // batches run long stretches of one campaign
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& o = batch[i];
      if (o.key.campaign != current) {
        campaign = known(o.key.campaign);
        current = o.key.campaign;
      }
      if (!campaign) continue;
      events.push_back(outcome_event(o, campaign->facts, i < addresses.size() ? addresses[i] : std::string(),
                                     sender(o.key, campaign->verp_domain), now_ms));
    }
    sink_->append(events);
  } catch (const std::exception& e) {
    log_failure("recorded", e);
  }
}

void CampaignEvents::intake(queue::CampaignId id, std::int64_t now_ms) noexcept {
  if (!intake_events_) return;
  try {
    auto campaign = known(id);
    if (!campaign) return;
    std::vector<EventRecord> events;
    events.reserve(kIntakeBatch);
    store_.for_each_recipient(id, [&](const queue::Recipient& r) {
      events.push_back(intake_event(r, campaign->facts, now_ms));
      if (events.size() >= kIntakeBatch) {
        sink_->append(events);
        events.clear();
      }
      return true;
    });
    sink_->append(events);
  } catch (const std::exception& e) {
    log_failure("intake", e);
  }
}

void CampaignEvents::later(const queue::Recipient& recipient, const queue::Event& event) noexcept {
  try {
    auto campaign = known(recipient.key.campaign);
    if (!campaign) return;
    EventRecord e = later_event(event, recipient, campaign->facts, sender(recipient.key, campaign->verp_domain));
    sink_->append(std::span<const EventRecord>(&e, 1));
  } catch (const std::exception& e) {
    log_failure("later", e);
  }
}

std::unique_ptr<CampaignEvents> open_campaign_events(const Config& config, queue::Store& store,
                                                     GlobalCounters* counters) {
  if (!config.events.enabled) return nullptr;
  EventLogOptions options{event_log_file(config.events, config.queue.path), config.events.max_bytes,
                          config.events.keep};
  return std::make_unique<CampaignEvents>(store, std::make_unique<EventLog>(std::move(options), counters),
                                          config.verp.secret, config.events.intake);
}

}  // namespace kurier::engine
