// The daemon's HTTP routes (see api.h). HTTP handler threads; InputError and
// StoreError from an intake become 400 and 507 answers, never exceptions out of here.
#include "engine/ops/api.h"

#include <map>
#include <string_view>

#include <fmt/format.h>

#include "common/text.h"
#include "engine/core/input_error.h"
#include "engine/delivery/campaign_control.h"
#include "engine/intake/campaign.h"
#include "engine/ops/auth_token.h"
#include "engine/ops/chart_data.h"
#include "engine/ops/metrics.h"
#include "engine/ops/operations.h"

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
    return {200, "text/plain; version=0.0.4; charset=utf-8",
            to_prometheus(delivery_.metrics().snapshot()) + control_metrics()};
  if (request.path == "/api/status" && get) return json_response(200, status());
  if (request.path == "/api/operations") {
    if (request.method != "POST") return json_response(405, {{"error", "use POST"}});
    if (!token_matches(request.authorization, token_))
      return json_response(401, {{"error", "a valid 'Authorization: Bearer <token>' is required"}});
    return operation(request.body);
  }
  if (request.path == "/api/history" && get)
    return json_response(200, chart_data_json(delivery_.metrics(), system_now_ms()));
  if (request.path == "/api/campaigns") {
    if (request.method != "POST") return json_response(405, {{"error", "use POST"}});
    if (!token_matches(request.authorization, token_))
      return json_response(401, {{"error", "a valid 'Authorization: Bearer <token>' is required"}});
    return submit(request.body);
  }
  return json_response(404, {{"error", "no such endpoint: " + request.path}});
}

// Paused and cancelled campaigns and operator suspensions, as Prometheus gauges.
std::string Api::control_metrics() {
  std::string out =
      "# HELP kurier_campaign_held Campaigns paused or cancelled (1), by state, who and why.\n"
      "# TYPE kurier_campaign_held gauge\n";
  auto label = [](std::string_view v) {
    std::string o;
    append_label_value(o, v);
    return o;
  };
  for (const auto& [id, state] : delivery_.control().all()) {
    auto campaign = store_.campaign(id);
    out += fmt::format("kurier_campaign_held{{campaign=\"{}\",state=\"{}\",by=\"{}\",reason=\"{}\"}} 1\n",
                       label(campaign ? campaign->name : std::to_string(id)), to_string(state.state), label(state.by),
                       label(state.reason));
  }
  out += "# HELP kurier_operator_suspended_until_seconds Operator suspensions (kurier suspend), by scope.\n"
         "# TYPE kurier_operator_suspended_until_seconds gauge\n";
  for (const auto& hold : delivery_.holds())
    out += fmt::format("kurier_operator_suspended_until_seconds{{scope=\"{}\",reason=\"{}\"}} {}\n", label(hold.scope),
                       label(hold.reason), hold.until_ms / 1000);
  return out;
}

json Api::status() {
  auto snapshot = delivery_.metrics().snapshot();
  const std::int64_t now_s = snapshot.taken_ms / 1000;
  json domains = json::array(), providers = json::array();
  for (const auto& d : snapshot.domains) domains.push_back(series_json(d, now_s, "domain"));
  for (const auto& p : snapshot.providers) providers.push_back(series_json(p, now_s, "provider"));
  auto progress = delivery_.progress();
  json holds = json::array();
  std::map<std::string, std::string> hold_reasons;
  for (const auto& hold : delivery_.holds()) {
    holds.push_back({{"scope", hold.scope}, {"until", hold.until_ms / 1000}, {"reason", hold.reason}});
    hold_reasons[hold.scope] = hold.reason;
  }
  // Operator suspensions show on the destinations they hold.
  for (auto& d : domains) {
    std::string reason;
    if (auto it = hold_reasons.find("domain:" + d["domain"].get<std::string>()); it != hold_reasons.end())
      reason = it->second;
    else if (auto p = hold_reasons.find("provider:" + d.value("provider", "")); p != hold_reasons.end())
      reason = p->second;
    if (!reason.empty()) d["suspended_reason"] = reason;
  }
  for (auto& p : providers)
    if (auto it = hold_reasons.find("provider:" + p["provider"].get<std::string>()); it != hold_reasons.end())
      p["suspended_reason"] = it->second;
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
          {"campaigns", counts_.to_json()},
          {"suspensions", holds}};
}

HttpResponse Api::operation(const std::string& body) {
  auto request = json::parse(body, nullptr, false);
  if (!request.is_object()) return json_response(400, {{"error", "body must be a JSON object with an \"op\""}});
  std::lock_guard lock(operation_mutex_);
  try {
    OperationTarget target{store_, config_, &delivery_, system_now_ms(), events_};
    OperationResult result = perform(request, target);
    counts_.poke();
    log_->info("event=operation op={} exit={} result=\"{}{}\"", request.value("op", ""), result.exit,
               text::trim(result.out), text::trim(result.err));
    return json_response(200, to_json(result));
  } catch (const queue::StoreError& e) {
    log_->error("event=queue_failed during=operation error=\"{}\"", e.what());
    if (on_store_failure_) on_store_failure_(e.what());
    return json_response(507, {{"error", e.what()}});
  }
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
