// TLS policy per session (engine/delivery/tls_policy.h): pure decisions and their wording.
// Runs on any thread; no I/O, nothing thrown.
#include "engine/delivery/tls_policy.h"

#include <algorithm>

namespace kurier::engine {

std::string_view to_string(smtp::TlsPolicy policy) {
  switch (policy) {
    case smtp::TlsPolicy::opportunistic: return "opportunistic";
    case smtp::TlsPolicy::required: return "required";
    case smtp::TlsPolicy::disabled: return "none";
  }
  return "opportunistic";
}

std::optional<smtp::TlsPolicy> tls_policy_from_string(std::string_view name) {
  for (auto policy : {smtp::TlsPolicy::opportunistic, smtp::TlsPolicy::required, smtp::TlsPolicy::disabled})
    if (name == to_string(policy)) return policy;
  return std::nullopt;
}

TlsPlan plan_tls(smtp::TlsPolicy configured, const std::optional<StsPolicy>& policy,
                 std::vector<smtp::Target> targets) {
  TlsPlan plan;
  plan.tls = configured;
  plan.label = std::string(to_string(configured));
  if (!policy || policy->mode == StsMode::none) {
    plan.targets = std::move(targets);
    return plan;
  }
  plan.policy = policy;
  if (policy->mode == StsMode::testing) {
    // Deliver as usual to every MX, in the usual order; check and record (describe_tls).
    plan.label = "mta-sts testing";
    plan.cert_check = smtp::CertCheck::report;
    plan.targets = std::move(targets);
    return plan;
  }
  plan.label = "mta-sts enforce";
  plan.tls = smtp::TlsPolicy::required;
  plan.cert_check = smtp::CertCheck::enforce;
  std::vector<std::string> outside;  // MX hosts the policy does not list, once each
  for (auto& target : targets) {
    if (mx_allowed(*policy, target.host)) plan.targets.push_back(std::move(target));
    else if (std::find(outside.begin(), outside.end(), target.host) == outside.end()) outside.push_back(target.host);
  }
  if (plan.targets.empty()) {
    auto join = [](const std::vector<std::string>& items) {
      std::string out;
      for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
      return out;
    };
    plan.refused = "no MX host matches the MTA-STS policy (MX: " + join(outside) +
                   "; policy mx: " + join(policy->mx) + ")";
  }
  return plan;
}

std::string describe_tls(const TlsPlan& plan, const smtp::SessionInfo& info) {
  std::string out;
  if (info.tls) out = info.tls_protocol + " " + info.tls_cipher;
  else if (info.tls_fallback) out = "plaintext after failed STARTTLS";
  else out = "plaintext";
  out += "; policy=" + plan.label;
  if (info.tls) out += "; cert=" + info.tls_verify;
  if (plan.label == "mta-sts testing") {
    // What enforce would have refused: a listed MX failure, no TLS, a bad certificate.
    std::string would;
    if (plan.policy && !mx_allowed(*plan.policy, info.target.host)) would = "MX " + info.target.host + " not in policy";
    if (!info.tls) would += std::string(would.empty() ? "" : "; ") + "no TLS";
    else if (!info.tls_verified) would += std::string(would.empty() ? "" : "; ") + "certificate: " + info.tls_verify;
    if (!would.empty()) out += "; mta-sts testing failure (enforce would defer): " + would;
  }
  return out;
}

}  // namespace kurier::engine
