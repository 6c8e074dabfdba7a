// Domain -> key routing, greylist recognition, and the per-key throttle state machine
// (shaping.toml is read by shaping_file.cpp). Throttle/Shaper are called from every
// delivery worker under their mutexes; at run time nothing here fails.
#include "engine/delivery/shaping/shaping.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <regex>

#include "common/text.h"
#include "dns/message.h"
#include "engine/ops/metrics.h"

namespace kurier::engine {
namespace {

// A throttling reply reflects the load the sender put on the server a moment ago,
// often seen by several sessions at once: one reaction per second, so a burst of 421s
// from the same overload halves the limits once, not once per session.
constexpr std::int64_t kReactionDebounceMs = 1000;
// After a throttling reply no new connection for this long: reconnecting at once
// would only earn the next 421.
constexpr std::int64_t kReconnectPauseMs = 1000;
// A new connection is pointless while the message rate already has this much work
// queued ahead: it would only idle, holding a slot at the server.
constexpr double kMaxPacingBacklogMs = 2000;
// How soon to look again when every connection slot of a key is taken by sessions of
// other destinations (a destination's own sessions ending restart it without a poll).
constexpr std::int64_t kSlotPollMs = 20;
// Throttles of plain domains that are idle and unthrottled are dropped after this
// many creations, so a list with a million small domains does not grow the table.
constexpr std::size_t kSweepEvery = 4096;

using dns::wire::normalize_name;  // lower-case, no trailing dot

bool any_match(const std::vector<std::string>& patterns, std::string_view name) {
  for (const auto& p : patterns)
    if (host_glob_match(p, name)) return true;
  return false;
}


}  // namespace

class ReplyPattern {
 public:
  explicit ReplyPattern(const std::string& pattern)
      : regex_(pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize) {}
  bool search(const std::string& text) const { return std::regex_search(text, regex_); }

 private:
  std::regex regex_;
};

std::string_view to_string(ThrottleAction action) {
  switch (action) {
    case ThrottleAction::none: return "none";
    case ThrottleAction::slow: return "slow";
    case ThrottleAction::suspend: return "suspend";
  }
  return "none";
}

ThrottleRule make_throttle_rule(std::string pattern, ThrottleAction action, std::chrono::seconds duration) {
  ThrottleRule rule;
  rule.compiled = std::make_shared<const ReplyPattern>(pattern);
  rule.pattern = std::move(pattern);
  rule.action = action;
  rule.duration = duration;
  return rule;
}

bool ThrottleRule::matches(const std::string& reply_line) const { return compiled && compiled->search(reply_line); }

const std::vector<ThrottleRule>& builtin_throttle_rules() {
  using std::chrono::minutes;
  // Rate and connection wording as Gmail, Microsoft, Yahoo, GMX and Postfix-based
  // receivers phrase it. Yahoo's TS03 means "permanently deferred": stop for an hour.
  static const std::vector<ThrottleRule> rules = {
      make_throttle_rule(R"(\bTS03\b)", ThrottleAction::suspend, minutes(60)),
      make_throttle_rule(R"(\bTS0[12]\b)", ThrottleAction::suspend, minutes(15)),
      make_throttle_rule(R"(^4\d\d 4\.7\.28\b|unusual rate|rate limit|rate-limit|ratelimit|throttl)",
                         ThrottleAction::slow, minutes(5)),
      make_throttle_rule(R"(4\.7\.500|server busy|too many (concurrent )?(connections|sessions)|too many messages in)"
                         R"(|too many connections from your)",
                         ThrottleAction::slow, minutes(5)),
  };
  return rules;
}

bool ShapingRules::uses_mx() const {
  return std::any_of(providers.begin(), providers.end(), [](const auto& p) { return !p.match_mx.empty(); });
}

bool host_glob_match(std::string_view pattern, std::string_view host) {
  // Iterative glob with backtracking to the last '*'.
  std::size_t p = 0, h = 0, star = std::string_view::npos, mark = 0;
  auto eq = [](char a, char b) { return text::lower_char(a) == text::lower_char(b); };
  while (h < host.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || eq(pattern[p], host[h]))) {
      ++p;
      ++h;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = h;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      h = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// --- Throttle ---------------------------------------------------------------

Throttle::Throttle(std::string key, std::string provider, const ShapingLimits& limits,
                   std::vector<const ThrottleRule*> rules)
    : key_(std::move(key)),
      provider_(std::move(provider)),
      limits_(limits),
      rules_(std::move(rules)),
      connection_limit_(limits.connections),
      rate_(limits.rate.per_second) {}

void Throttle::refresh(std::int64_t now_ms) {
  bool changed = false;
  if (suspended_until_ms_ != 0 && now_ms >= suspended_until_ms_) {
    suspended_until_ms_ = 0;
    changed = true;
  }
  const double configured_rate = limits_.rate.per_second;
  auto reduced = [&] {
    const bool rate_reduced = configured_rate > 0 ? rate_ < configured_rate : rate_ > 0;
    return connection_limit_ < limits_.connections || rate_reduced;
  };
  const std::int64_t interval = std::chrono::duration_cast<std::chrono::milliseconds>(limits_.recovery_interval).count();
  while (reduced() && now_ms >= hold_until_ms_ && now_ms >= next_recovery_ms_) {
    connection_limit_ = std::min(limits_.connections, connection_limit_ + 1);
    if (configured_rate > 0) {
      rate_ = std::min(configured_rate, rate_ + configured_rate / 10);
    } else if (rate_ > 0) {
      // No configured rate: grow back towards the rate of the slow-down, then let go.
      rate_ += std::max(1.0, recover_rate_to_ / 10);
      if (rate_ >= recover_rate_to_) rate_ = 0;
    }
    next_recovery_ms_ = std::max(next_recovery_ms_, hold_until_ms_) + interval;
    changed = true;
  }
  if (changed) publish();
}

double Throttle::observed_rate(std::int64_t now_ms) const {
  // Only a whole second of sending is a measurement: the first second is partial, and
  // a few messages sent while connections were refused say nothing about the rate.
  const std::int64_t second = now_ms / 1000;
  if (second == count_second_ && count_second_ - 1 > first_second_) return static_cast<double>(count_previous_);
  if (second == count_second_ + 1 && count_second_ > first_second_) return static_cast<double>(count_current_);
  return 0;
}

Throttle::Gate Throttle::try_open_connection(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  refresh(now_ms);
  if (suspended_until_ms_ > now_ms) return {false, suspended_until_ms_};
  if (reconnect_after_ms_ > now_ms) return {false, reconnect_after_ms_};
  if (open_ >= connection_limit_) {
    const bool reduced = connection_limit_ < limits_.connections;
    return {false, now_ms + kSlotPollMs, true, reduced ? std::max(hold_until_ms_, next_recovery_ms_) : 0};
  }
  if (open_ > 0 && rate_ > 0 && message_tat_ms_ - static_cast<double>(now_ms) > kMaxPacingBacklogMs)
    return {false, static_cast<std::int64_t>(message_tat_ms_ - kMaxPacingBacklogMs) + 1};
  if (!limits_.connection_rate.unlimited()) {
    if (connect_tat_ms_ > static_cast<double>(now_ms)) return {false, static_cast<std::int64_t>(std::ceil(connect_tat_ms_))};
    connect_tat_ms_ = std::max(connect_tat_ms_, static_cast<double>(now_ms)) + 1000.0 / limits_.connection_rate.per_second;
  }
  ++open_;
  return {true, 0};
}

void Throttle::connection_closed() {
  std::lock_guard lock(mutex_);
  if (open_ > 0) --open_;
}

bool Throttle::over_connection_limit(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  refresh(now_ms);
  return open_ > connection_limit_ || suspended_until_ms_ > now_ms;
}

std::optional<std::int64_t> Throttle::reserve_message(std::int64_t now_ms, std::int64_t max_wait_ms) {
  std::lock_guard lock(mutex_);
  refresh(now_ms);
  if (suspended_until_ms_ > now_ms || open_ > connection_limit_) return std::nullopt;
  std::int64_t send_at = now_ms;
  if (rate_ > 0) {
    const double at = std::max(message_tat_ms_, static_cast<double>(now_ms));
    if (at - static_cast<double>(now_ms) > static_cast<double>(max_wait_ms)) return std::nullopt;
    message_tat_ms_ = at + 1000.0 / rate_;
    send_at = static_cast<std::int64_t>(std::ceil(at));
  }
  const std::int64_t second = send_at / 1000;
  if (first_second_ < 0) first_second_ = second;
  if (second != count_second_) {
    count_previous_ = second == count_second_ + 1 ? count_current_ : 0;
    count_current_ = 0;
    count_second_ = second;
  }
  ++count_current_;
  return send_at;
}

ThrottleAction Throttle::on_reply(int code, std::string_view enhanced, std::string_view text, std::int64_t now_ms) {
  // The line every rule searches, built once for all of them.
  std::string line = std::to_string(code);
  if (!enhanced.empty()) {
    line += ' ';
    line += enhanced;
  }
  line += ' ';
  line += text;
  const ThrottleRule* rule = nullptr;
  for (const ThrottleRule* r : rules_)
    if (r->matches(line)) {
      rule = r;
      break;
    }
  if (!rule) return ThrottleAction::none;
  std::lock_guard lock(mutex_);
  refresh(now_ms);
  ++events_;
  const std::int64_t duration = std::chrono::duration_cast<std::chrono::milliseconds>(rule->duration).count();
  reconnect_after_ms_ = std::max(reconnect_after_ms_, now_ms + kReconnectPauseMs);
  if (rule->action == ThrottleAction::suspend)
    suspended_until_ms_ = std::max(suspended_until_ms_, now_ms + duration);
  hold_until_ms_ = std::max({hold_until_ms_, now_ms + duration, suspended_until_ms_});
  next_recovery_ms_ = hold_until_ms_ +
                      std::chrono::duration_cast<std::chrono::milliseconds>(limits_.recovery_interval).count();
  if (now_ms - last_reaction_ms_ >= kReactionDebounceMs) {
    last_reaction_ms_ = now_ms;
    // Multiplicative decrease of what is actually in use, not of a configured
    // ceiling the server never saw: 20 allowed but 6 open -> 3.
    connection_limit_ = std::max(1, std::min(connection_limit_, std::max(open_, 1)) / 2);
    // The rate in force is halved; without one, the rate measured over the last whole
    // second (if there is such a measurement; else the connections alone are cut).
    const double base = rate_ > 0 ? rate_ : observed_rate(now_ms);
    if (base > 0) {
      if (rate_ <= 0 || recover_rate_to_ <= 0) recover_rate_to_ = base;
      rate_ = std::max(base / 2, 1.0 / 60);  // never below one message a minute
    }
  }
  publish();
  return rule->action;
}

std::int64_t Throttle::suspended_until(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  refresh(now_ms);
  return suspended_until_ms_;
}

ThrottleSnapshot Throttle::snapshot(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  refresh(now_ms);
  ThrottleSnapshot s;
  s.key = key_;
  s.provider = provider_;
  s.connections_open = open_;
  s.connection_limit = connection_limit_;
  s.configured_connections = limits_.connections;
  s.rate_limit = rate_;
  s.configured_rate = limits_.rate.per_second;
  s.suspended_until_ms = suspended_until_ms_;
  s.slowed_until_ms = hold_until_ms_ > now_ms ? hold_until_ms_ : 0;
  s.throttle_events = events_;
  return s;
}

void Throttle::attach(Series* series) {
  std::lock_guard lock(mutex_);
  series_ = series;
  if (series_) {
    series_->set_configured_rate(limits_.rate.per_second);
    series_->set_configured_connections(limits_.connections);
  }
  publish();
}

void Throttle::publish() {
  if (!series_) return;
  series_->set_rate_limit(rate_);
  series_->set_connection_limit(connection_limit_);
  series_->set_suspended_until(suspended_until_ms_ / 1000);
}

// --- Shaper -----------------------------------------------------------------

Shaper::Shaper(ShapingRules rules, Clock clock) : rules_(std::move(rules)), clock_(std::move(clock)) {}

void Shaper::hold(const std::string& scope, Hold hold) {
  std::lock_guard lock(holds_mutex_);
  holds_[scope] = std::move(hold);
  any_hold_ = true;
}

bool Shaper::release(const std::string& scope) {
  std::lock_guard lock(holds_mutex_);
  const bool found = holds_.erase(scope) > 0;
  any_hold_ = !holds_.empty();
  return found;
}

std::int64_t Shaper::held_until(std::string_view domain, std::string_view provider, std::int64_t now_ms) const {
  if (!any_hold_.load(std::memory_order_relaxed)) return 0;
  std::lock_guard lock(holds_mutex_);
  std::int64_t until = 0;
  auto check = [&](std::string_view kind, std::string_view name) {
    if (name.empty()) return;
    auto it = holds_.find(std::string(kind) + std::string(name));
    if (it != holds_.end() && it->second.until_ms > now_ms) until = std::max(until, it->second.until_ms);
  };
  check("domain:", domain);
  check("provider:", provider);
  return until;
}

std::map<std::string, Shaper::Hold> Shaper::holds(std::int64_t now_ms) const {
  std::lock_guard lock(holds_mutex_);
  std::map<std::string, Hold> out;
  for (const auto& [scope, hold] : holds_)
    if (hold.until_ms > now_ms) out.emplace(scope, hold);
  return out;
}

bool Shaper::needs_mx(std::string_view domain) const {
  if (!rules_.uses_mx()) return false;
  const std::string d = normalize_name(std::string(domain));
  if (rules_.domains.count(d)) return false;
  for (const auto& p : rules_.providers)
    if (any_match(p.match_domains, d)) return false;
  return true;
}

Shaper::Route Shaper::route(std::string_view domain, const std::vector<std::string>& mx_hosts) const {
  const std::string d = normalize_name(std::string(domain));
  if (auto it = rules_.domains.find(d); it != rules_.domains.end())
    return {"domain:" + d, "", &it->second.limits, &it->second.on_reply};
  for (const auto& p : rules_.providers)
    if (any_match(p.match_domains, d)) return {p.name, p.name, &p.limits, &p.on_reply};
  // The most preferred MX decides: that is where the mail goes.
  if (!mx_hosts.empty()) {
    const std::string host = normalize_name(std::string(mx_hosts.front()));
    for (const auto& p : rules_.providers)
      if (any_match(p.match_mx, host)) return {p.name, p.name, &p.limits, &p.on_reply};
  }
  return {d, "", &rules_.defaults, nullptr};
}

std::shared_ptr<Throttle> Shaper::throttle_for(std::string_view domain, const std::vector<std::string>& mx_hosts) {
  Route r = route(domain, mx_hosts);
  std::lock_guard lock(mutex_);
  auto& slot = throttles_[r.key];
  if (slot) return slot;
  std::vector<const ThrottleRule*> list;
  if (r.on_reply)
    for (const auto& rule : *r.on_reply) list.push_back(&rule);
  for (const auto& rule : rules_.throttle) list.push_back(&rule);
  for (const auto& rule : builtin_throttle_rules()) list.push_back(&rule);
  slot = std::make_shared<Throttle>(r.key, r.provider, *r.limits, std::move(list));
  auto created = slot;
  if (on_new_) on_new_(*created);
  if (++created_since_sweep_ >= kSweepEvery) {
    created_since_sweep_ = 0;
    const auto now_ms = clock_();
    for (auto it = throttles_.begin(); it != throttles_.end();) {
      auto s = it->second.use_count() == 1 ? it->second->snapshot(now_ms) : ThrottleSnapshot{};
      const bool idle = it->second.use_count() == 1 && s.provider.empty() && s.connections_open == 0 &&
                        s.suspended_until_ms == 0 && s.slowed_until_ms == 0 &&
                        s.connection_limit == s.configured_connections && s.rate_limit == s.configured_rate;
      it = idle ? throttles_.erase(it) : std::next(it);
    }
  }
  return created;
}

void Shaper::on_new_throttle(std::function<void(Throttle&)> callback) {
  std::lock_guard lock(mutex_);
  on_new_ = std::move(callback);
}

}  // namespace kurier::engine
