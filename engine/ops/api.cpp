// The daemon's HTTP routes (see api.h). HTTP handler threads; InputError and
// StoreError from an intake become 400 and 507 answers, never exceptions out of here.
#include "engine/ops/api.h"

#include <string_view>

#include "engine/core/input_error.h"
#include "engine/intake/campaign.h"
#include "engine/ops/auth_token.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {
namespace detail {
extern const std::string_view kDashboardHtml;  // engine/ops/dashboard.html, embedded by CMake
}  // namespace detail

namespace {

using nlohmann::json;

HttpResponse json_response(int status, const json& body) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

json series_json(const SeriesSnapshot& s, std::int64_t now_s, const char* name_key) {
  json bounced = json::object();
  for (std::size_t i = 0; i < bounce::kFailureCategories; ++i) bounced[std::string(bounce::to_string(static_cast<bounce::Category>(i)))] = s.bounced[i];
  json j = {{name_key, s.name},
            {"queued", s.queued},
            {"in_flight", s.in_flight},
            {"connections", s.connections},
            {"connection_limit", s.connection_limit},
            {"delivered", s.delivered},
            {"deferred", s.deferred},
            {"greylisted", s.greylisted},
            {"expired", s.expired},
            {"bounced", s.bounced_total()},
            {"bounced_by_category", bounced},
            {"throttled", s.throttled},
            {"rate_limit", s.rate_limit},
            {"configured_rate", s.configured_rate},
            {"suspended_until", s.suspended_until},
            {"state", to_string(s.throttle_state(now_s))}};
  if (std::string_view(name_key) == "domain") j["provider"] = s.provider;
  return j;
}

}  // namespace

Api::Api(const Config& config, queue::Store& store, Delivery& delivery, CampaignCounts& counts, std::string token)
    : config_(config), store_(store), delivery_(delivery), counts_(counts), token_(std::move(token)),
      hygiene_(config.hygiene), mail_hosts_(make_no_mail_host_lookup(hygiene_, config)) {}

HttpResponse Api::operator()(const HttpRequest& request) {
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (request.path == "/" && get) return {200, "text/html; charset=utf-8", std::string(detail::kDashboardHtml)};
  if (request.path == "/metrics" && get)
    return {200, "text/plain; version=0.0.4; charset=utf-8", to_prometheus(delivery_.metrics().snapshot())};
  if (request.path == "/api/status" && get) return json_response(200, status());
  if (request.path == "/api/campaigns") {
    if (request.method != "POST") return json_response(405, {{"error", "use POST"}});
    if (!token_matches(request.authorization, token_))
      return json_response(401, {{"error", "a valid 'Authorization: Bearer <token>' is required"}});
    return submit(request.body);
  }
  return json_response(404, {{"error", "no such endpoint: " + request.path}});
}

json Api::status() {
  auto snapshot = delivery_.metrics().snapshot();
  const std::int64_t now_s = snapshot.taken_ms / 1000;
  json domains = json::array(), providers = json::array();
  for (const auto& d : snapshot.domains) domains.push_back(series_json(d, now_s, "domain"));
  for (const auto& p : snapshot.providers) providers.push_back(series_json(p, now_s, "provider"));
  auto progress = delivery_.progress();
  return {{"time", snapshot.taken_ms},
          {"started", snapshot.started_ms},
          {"totals",
           {{"delivered", progress.delivered},
            {"deferred", progress.deferred},
            {"bounced", progress.bounced},
            {"expired", progress.expired},
            {"in_flight", progress.in_flight},
            {"sessions", progress.sessions},
            {"messages_sent", progress.messages_sent}}},
          {"domains", domains},
          {"providers", providers},
          {"campaigns", counts_.to_json()}};
}

HttpResponse Api::submit(const std::string& body) {
  auto request = json::parse(body, nullptr, false);
  if (!request.is_object() || !request.contains("campaign") || !request["campaign"].is_string())
    return json_response(400, {{"error", "body must be {\"campaign\": \"/path/to/campaign.toml\"}"}});
  std::filesystem::path file = request["campaign"].get<std::string>();
  if (!file.is_absolute()) return json_response(400, {{"error", "campaign path must be absolute: " + file.string()}});
  // One intake at a time: the hygiene DNS lookup is single-threaded, and two
  // submissions of one campaign must not race over its id.
  std::lock_guard lock(submit_mutex_);
  try {
    CampaignSpec spec = load_campaign(file);
    // The same intake as `kurier send`: list hygiene, DKIM keys, one synced commit.
    IntakeResult intake = submit_campaign(store_, spec, system_now_ms(), config_.dkim.keys,
                                          IntakeHygiene{&hygiene_, mail_hosts_.get()}, events_);
    delivery_.metrics().global().campaigns_submitted.fetch_add(1, std::memory_order_relaxed);
    counts_.poke();
    log_->info("event=campaign_submitted campaign={} rows={} queued={} suppressed={} resumed={}", spec.id,
               intake.rows, intake.queued, intake.suppressed, intake.resumed);
    return json_response(200, {{"campaign", spec.id},
                               {"resumed", intake.resumed},
                               {"rows", intake.rows},
                               {"queued", intake.queued},
                               {"suppressed", intake.suppressed},
                               {"suppressed_by_reason", intake.suppressed_by_reason},
                               {"warned", intake.warned},
                               {"verdicts", intake.verdicts}});
  } catch (const InputError& e) {
    return json_response(400, {{"error", e.what()}, {"file", e.file()}, {"line", e.line()}, {"field", e.field()}});
  } catch (const queue::StoreError& e) {
    // The queue takes no writes (disk full, read-only, I/O error): nothing of this
    // campaign is committed, and no outcome could be recorded either, so the daemon
    // stops rather than send mail it cannot account for.
    log_->error("event=queue_failed during=submit error=\"{}\"", e.what());
    if (on_store_failure_) on_store_failure_(e.what());
    return json_response(507, {{"error", e.what()}});
  }
}

}  // namespace kurier::engine
