// The TLS policy of one SMTP session: the configured one ([smtp] tls, or the
// destination's `tls` in shaping.toml) unless the domain publishes an MTA-STS policy,
// and the words that the attempt log records about it.
//
// plan_tls() is pure: it takes the MX targets and the policy in force and says which
// targets may be used, with which smtp::TlsPolicy and certificate check. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/delivery/mta_sts.h"
#include "smtp/client.h"

namespace kurier::engine {

std::string_view to_string(smtp::TlsPolicy policy);  // "opportunistic", "required", "none"
// The inverse of to_string(); nullopt for any other name.
std::optional<smtp::TlsPolicy> tls_policy_from_string(std::string_view name);

struct TlsPlan {
  smtp::TlsPolicy tls = smtp::TlsPolicy::opportunistic;
  smtp::CertCheck cert_check = smtp::CertCheck::none;
  std::string label;                   // the policy applied: "opportunistic", "required",
                                       // "none", "mta-sts enforce", "mta-sts testing"
  std::vector<smtp::Target> targets;   // the MX targets that may be used, in order
  // Set when no target may be used (enforce: no MX host matches the policy): the
  // destination is deferred with this reason, nothing is sent.
  std::string refused;
  std::optional<StsPolicy> policy;     // the MTA-STS policy in force (enforce or testing)
};

// `configured`: the destination's TLS policy. With an enforce policy, only targets whose
// host matches its mx patterns remain, TLS is required and the certificate must verify
// (RFC 8461 §4, §5); testing keeps `configured` and reports what enforce would refuse;
// mode none (or no policy) is `configured` alone.
TlsPlan plan_tls(smtp::TlsPolicy configured, const std::optional<StsPolicy>& policy,
                 std::vector<smtp::Target> targets);

// The attempt log's TLS detail for a session opened under `plan`:
// "TLSv1.3 TLS_AES_256_GCM_SHA384; policy=mta-sts enforce; cert=verified".
std::string describe_tls(const TlsPlan& plan, const smtp::SessionInfo& info);

}  // namespace kurier::engine
