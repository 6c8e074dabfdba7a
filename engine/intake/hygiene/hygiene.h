// List hygiene: verdicts on recipient addresses before anything is sent (issue 6).
//
// Contract: every address gets a set of verdicts, each with a policy (reject, warn,
// off) that decides its action: reject if any verdict rejects, else warn if any warns,
// else accept. Addresses are never corrected; a likely typo comes with a suggestion.
//   syntax           RFC 5321/5322 addr-spec (engine/intake/address.h); the other verdicts
//                    are only judged for valid addresses
//   provider_syntax  impossible at that provider (data/provider-syntax.toml)
//   disposable       domain, or a parent of it, on a disposable-service list
//   role             role account (RFC 2142, noreply, ...; data/roles.txt)
//   trap             a trap keyword as a word of the local part (data/trap-keywords.txt)
//   no_mail_host     NXDOMAIN, null MX, or neither MX nor A/AAAA; a temporary DNS
//                    failure is never this verdict (MailHostLookup, once per domain)
//   typo_suspect     one edit from a major provider's domain (data/typo-domains.txt)
//   duplicate        seen before in the same input (domain case-insensitive; local
//                    part folded too unless fold_local_case is off)
//   suppressed       on the queue's suppression list
//
// Hygiene holds the rules and lists: immutable after construction, shareable between
// threads. Screening judges one input (a campaign, a `kurier check` run): it keeps the
// duplicates seen and a per-domain cache; one thread at a time.
// No DNS or Asio here: no_mail_host goes through the MailHostLookup seam
// (engine/intake/hygiene/hygiene_dns.h implements it with dns/).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/intake/address.h"

namespace kurier::engine {

// In the order the verdicts are listed (JSON output, summaries).
enum class Verdict : std::uint8_t {
  syntax,
  provider_syntax,
  disposable,
  role,
  trap,
  no_mail_host,
  typo_suspect,
  duplicate,
  suppressed,
};
inline constexpr std::size_t kVerdictCount = 9;
const char* to_string(Verdict verdict);
std::optional<Verdict> verdict_from_string(std::string_view name);

enum class Policy : std::uint8_t { off, warn, reject };
const char* to_string(Policy policy);
std::optional<Policy> policy_from_string(std::string_view name);

enum class Action : std::uint8_t { accept, warn, reject };
const char* to_string(Action action);

class VerdictSet {
 public:
  void add(Verdict v) { bits_ = static_cast<std::uint16_t>(bits_ | (1u << static_cast<unsigned>(v))); }
  bool has(Verdict v) const { return (bits_ >> static_cast<unsigned>(v)) & 1u; }
  bool empty() const { return bits_ == 0; }
  std::vector<Verdict> list() const;  // in Verdict order
  bool operator==(const VerdictSet&) const = default;

 private:
  std::uint16_t bits_ = 0;
};

struct HygieneOptions {
  // Defaults: what cannot be delivered or would hurt the sender's reputation is
  // rejected (syntax, no_mail_host, suppressed, duplicate, trap, disposable:
  // throw-away mailboxes are nobody's lasting consent); role accounts are warned,
  // not rejected, because B2B lists legitimately hold info@ and sales@ contacts;
  // typo_suspect and provider_syntax only warn: the data may be right.
  std::array<Policy, kVerdictCount> policy = {
      Policy::reject,  // syntax (only reject is accepted: an invalid address cannot be sent)
      Policy::warn,    // provider_syntax
      Policy::reject,  // disposable
      Policy::warn,    // role
      Policy::reject,  // trap
      Policy::reject,  // no_mail_host
      Policy::warn,    // typo_suspect
      Policy::reject,  // duplicate
      Policy::reject,  // suppressed
  };
  AddressRules syntax;
  // RFC 5321 makes local parts case-sensitive, but no mailbox provider of note treats
  // Anna@ and anna@ as different people; a second copy is the worse error. Off:
  // duplicates compare the local part exactly.
  bool fold_local_case = true;
  // Added to the built-in lists. Files: one entry a line, '#' comments.
  std::vector<std::filesystem::path> disposable_files;
  std::vector<std::string> roles;
  std::vector<std::string> trap_keywords;
  std::vector<std::string> typo_domains;
  // Extra provider rules ([[provider]] tables as in data/provider-syntax.toml); a
  // provider of the same name replaces the built-in one.
  std::optional<std::filesystem::path> provider_syntax_file;

  Policy& operator[](Verdict v) { return policy[static_cast<std::size_t>(v)]; }
  Policy operator[](Verdict v) const { return policy[static_cast<std::size_t>(v)]; }
};

struct Judgement {
  VerdictSet verdicts;        // only verdicts whose policy is not off
  Action action = Action::accept;
  std::string suggestion;     // typo_suspect: the address with the likely domain; else ""
  std::string problem;        // syntax: what is wrong
  std::string suppression;    // suppressed: the suppression list's reason
  // The verdict that decided a reject (the first of syntax, duplicate, suppressed,
  // trap, no_mail_host, disposable, role, provider_syntax, typo_suspect).
  std::optional<Verdict> reason;
};

// Whether a domain can receive mail, as far as DNS says.
enum class MailHost : std::uint8_t {
  exists,   // MX, or A/AAAA (implicit MX)
  none,     // NXDOMAIN, null MX, or neither MX nor A/AAAA
  unknown,  // SERVFAIL, timeout, refused: not a verdict
};

// The DNS seam. lookup() blocks the calling thread until every domain has an answer
// (bounded by the resolver's timeouts) and returns one MailHost per domain, in order.
// Domains are ASCII (A-labels), lower case.
class MailHostLookup {
 public:
  virtual ~MailHostLookup() = default;
  virtual std::vector<MailHost> lookup(const std::vector<std::string>& domains) = 0;
};

class Hygiene {
 public:
  // The built-in lists (data/, compiled in) plus the options' extras. Throws
  // InputError naming the file and line for an unreadable or malformed list.
  explicit Hygiene(HygieneOptions options = {});
  ~Hygiene();
  Hygiene(const Hygiene&) = delete;
  Hygiene& operator=(const Hygiene&) = delete;

  const HygieneOptions& options() const { return options_; }

  // The verdicts that need no DNS, no queue and no memory of other addresses:
  // syntax, provider_syntax, disposable, role, trap, typo_suspect. Pure.
  Judgement judge_address(std::string_view address) const;

  // Sets action and reason from the verdicts and policies.
  void decide(Judgement& judgement) const;

 private:
  friend class Screening;
  struct Lists;
  struct DomainFacts;
  DomainFacts domain_facts(const std::string& ascii_domain) const;
  void judge_parsed(const ParsedAddress& parsed, std::string_view address, const DomainFacts& facts,
                    Judgement& judgement) const;
  HygieneOptions options_;
  std::unique_ptr<const Lists> lists_;
};

// Judges one input's addresses in order. Not thread-safe.
class Screening {
 public:
  // The suppression list: the entry's reason for a lower-cased address, if listed.
  using SuppressionLookup = std::function<std::optional<std::string>(const std::string& lower_address)>;

  // `dns` null (or no_mail_host off): no DNS; `suppressed` empty: no suppression list.
  // Both must outlive the Screening.
  Screening(const Hygiene& hygiene, MailHostLookup* dns, SuppressionLookup suppressed = {});
  ~Screening();
  Screening(const Screening&) = delete;
  Screening& operator=(const Screening&) = delete;

  // Optional first pass: remembers the domain of `address` so that resolve_noted()
  // can look up all of an input's domains at once (concurrently).
  void note(std::string_view address);
  void resolve_noted();

  // All verdicts. A domain not resolved before is looked up now (blocking).
  Judgement judge(std::string_view address);

  std::size_t dns_lookups() const { return dns_lookups_; }  // domains asked so far

 private:
  struct State;
  const Hygiene& hygiene_;
  MailHostLookup* dns_;
  SuppressionLookup suppressed_;
  std::unique_ptr<State> state_;
  std::size_t dns_lookups_ = 0;
};

}  // namespace kurier::engine
