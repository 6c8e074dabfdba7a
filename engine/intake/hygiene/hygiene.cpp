// List-hygiene verdicts (engine/intake/hygiene/hygiene.h): the lists, the per-address checks and the
// per-input screening. Caller's thread; pure except for the MailHostLookup and
// suppression callbacks it is given. Bad list files are InputError at construction.
#include "engine/intake/hygiene/hygiene.h"

#include <algorithm>
#include <bitset>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <toml++/toml.h>

#include "common/text.h"
#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"

namespace kurier::engine {

namespace hygiene_data {
extern const std::string_view kDisposableDomains;
extern const std::string_view kRoles;
extern const std::string_view kTrapKeywords;
extern const std::string_view kTypoDomains;
extern const std::string_view kProviderSyntax;
}  // namespace hygiene_data

namespace {

constexpr std::array<const char*, kVerdictCount> kVerdictNames = {
    "syntax", "provider_syntax", "disposable", "role", "trap", "no_mail_host", "typo_suspect", "duplicate", "suppressed"};

// Which rejecting verdict a suppressed recipient's reason names: the most
// fundamental first (nothing else matters for an invalid address), then what the
// sender already knows (duplicate, suppression list), then the riskiest.
constexpr std::array<Verdict, kVerdictCount> kReasonPriority = {
    Verdict::syntax,     Verdict::duplicate, Verdict::suppressed,      Verdict::trap,        Verdict::no_mail_host,
    Verdict::disposable, Verdict::role,      Verdict::provider_syntax, Verdict::typo_suspect};

// One entry a line; '#' starts a comment line; blank lines ignored; lower-cased.
template <typename Fn>
void for_each_entry(std::string_view text, Fn&& fn) {
  std::size_t line_no = 0;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_no;
    line = text::trim(line);
    if (line.empty() || line.front() == '#') continue;
    fn(text::lower_ascii(line), line_no);
  }
}

std::string read_list_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), 0, "", "cannot read list file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Words of a local part: split at '.', '-', '_', '+' and digits; lower case.
std::vector<std::string> words_of(std::string_view local) {
  std::vector<std::string> words;
  std::string word;
  for (unsigned char c : local) {
    if (c == '.' || c == '-' || c == '_' || c == '+' || c == '"' || std::isdigit(c)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += text::lower_char(static_cast<char>(c));
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

// True if a and b differ by exactly one edit: a character inserted, deleted or
// replaced, or two adjacent characters swapped (Damerau-Levenshtein distance 1).
bool one_edit_apart(std::string_view a, std::string_view b) {
  if (a.size() > b.size()) std::swap(a, b);
  if (b.size() - a.size() > 1 || a == b) return false;
  std::size_t i = 0;
  while (i < a.size() && a[i] == b[i]) ++i;
  if (a.size() == b.size()) {
    if (a.substr(i + 1) == b.substr(i + 1)) return true;  // replaced
    return i + 1 < a.size() && a[i] == b[i + 1] && a[i + 1] == b[i] && a.substr(i + 2) == b.substr(i + 2);
  }
  return a.substr(i) == b.substr(i + 1);  // inserted in b
}

// Splits "mail.example.co.uk" into ("mail.example.co", "uk").
std::pair<std::string_view, std::string_view> head_and_tld(std::string_view domain) {
  std::size_t dot = domain.rfind('.');
  if (dot == std::string_view::npos) return {domain, {}};
  return {domain.substr(0, dot), domain.substr(dot + 1)};
}

// Below this length a one-letter change of the name part is more often another
// real domain (mi.com vs me.com) than a typo; changes of the top-level domain
// alone (gmx.dee) are flagged for any length.
constexpr std::size_t kMinTypoNameLength = 4;

// Lookups by string_view without building a std::string (C++20 heterogeneous lookup):
// judging runs at hundreds of thousands of addresses a second.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

// The local part lower-cased (ASCII letters) in a fixed buffer: local parts are at
// most kMaxLocalPartBytes once parsed.
class LowerLocal {
 public:
  explicit LowerLocal(std::string_view local) : size_(std::min(local.size(), kMaxLocalPartBytes)) {
    for (std::size_t i = 0; i < size_; ++i)
      buf_[i] = text::lower_char(local[i]);
  }
  std::string_view view() const { return {buf_.data(), size_}; }

 private:
  std::array<char, kMaxLocalPartBytes> buf_{};
  std::size_t size_;
};

// Calls fn(word) for each word of `lower` (see words_of), until fn returns true.
template <typename Fn>
bool any_word(std::string_view lower, Fn&& fn) {
  std::size_t start = 0;
  for (std::size_t i = 0; i <= lower.size(); ++i) {
    const unsigned char c = i < lower.size() ? static_cast<unsigned char>(lower[i]) : '.';
    if (c == '.' || c == '-' || c == '_' || c == '+' || c == '"' || std::isdigit(c)) {
      if (i > start && fn(lower.substr(start, i - start))) return true;
      start = i + 1;
    }
  }
  return false;
}

using CharSet = std::bitset<256>;

// "a-z0-9._" -> the set of those characters.
CharSet parse_charset(std::string_view spec) {
  CharSet set;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(spec[i]);
    if (i + 2 < spec.size() && spec[i + 1] == '-') {
      unsigned char to = static_cast<unsigned char>(spec[i + 2]);
      for (unsigned x = c; x <= to; ++x) set.set(x);
      i += 2;
    } else {
      set.set(c);
    }
  }
  return set;
}

struct ProviderSyntaxRule {
  std::string name;
  std::vector<std::string> domains;
  std::size_t min_length = 1;
  std::size_t max_length = kMaxLocalPartBytes;
  CharSet allowed, first, last, no_repeat, ignore;
  std::vector<std::pair<unsigned char, std::size_t>> max_count;
  char subaddress = 0;  // 0: none

  // True if the provider could have issued this local part (given lower-cased).
  bool allows(std::string_view lower_local) const {
    if (lower_local.empty() || lower_local.front() == '"' || has_8bit(lower_local)) return false;
    std::string_view l = lower_local;
    if (subaddress) l = l.substr(0, l.find(subaddress));
    if (l.empty()) return false;
    std::size_t length = 0;
    for (std::size_t i = 0; i < l.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(l[i]);
      if (!allowed.test(c)) return false;
      if (i > 0 && no_repeat.test(c) && l[i - 1] == l[i]) return false;
      if (!ignore.test(c)) ++length;
    }
    if (first.any() && !first.test(static_cast<unsigned char>(l.front()))) return false;
    if (last.any() && !last.test(static_cast<unsigned char>(l.back()))) return false;
    for (const auto& [c, n] : max_count)
      if (static_cast<std::size_t>(std::count(l.begin(), l.end(), static_cast<char>(c))) > n) return false;
    return length >= min_length && length <= max_length;
  }
};

std::vector<ProviderSyntaxRule> parse_provider_rules(std::string_view text, const std::string& file) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    throw InputError(file, e.source().begin.line, "", std::string(e.description()));
  }
  std::vector<ProviderSyntaxRule> rules;
  reject_unknown_keys(root, {"provider"}, {file, ""});
  const toml::node* providers = root.get("provider");
  if (!providers) return rules;
  const toml::array* array = providers->as_array();
  if (!array) throw InputError(file, providers->source().begin.line, "provider", "must be [[provider]] tables");
  for (const auto& item : *array) {
    const toml::table* t = item.as_table();
    const std::size_t line = item.source().begin.line;
    if (!t) throw InputError(file, line, "provider", "must be [[provider]] tables");
    reject_unknown_keys(*t,
                        {"name", "domains", "min_length", "max_length", "allowed", "first", "last", "no_repeat",
                         "ignore", "subaddress", "max_count"},
                        {file, "provider", true});
    ProviderSyntaxRule rule;
    auto text_of = [&](std::string_view key) -> std::optional<std::string> {
      const toml::node* node = t->get(key);
      if (!node) return std::nullopt;
      auto v = node->value<std::string>();
      if (!v) throw InputError(file, node->source().begin.line, "provider." + std::string(key), "must be a string");
      return *v;
    };
    auto count_of = [&](std::string_view key, std::size_t fallback) {
      const toml::node* node = t->get(key);
      if (!node) return fallback;
      auto v = node->value<std::int64_t>();
      if (!v || *v < 1 || *v > static_cast<std::int64_t>(kMaxLocalPartBytes))
        throw InputError(file, node->source().begin.line, "provider." + std::string(key), "must be 1..64");
      return static_cast<std::size_t>(*v);
    };
    auto name = text_of("name");
    if (!name || name->empty()) throw InputError(file, line, "provider.name", "is required");
    rule.name = *name;
    const toml::array* domains = t->get("domains") ? t->get("domains")->as_array() : nullptr;
    if (!domains || domains->empty())
      throw InputError(file, line, "provider.domains", "is required: a list of domains");
    for (const auto& d : *domains) {
      auto v = d.value<std::string>();
      if (!v || v->empty()) throw InputError(file, d.source().begin.line, "provider.domains", "must be strings");
      rule.domains.push_back(text::lower_ascii(*v));
    }
    rule.min_length = count_of("min_length", 1);
    rule.max_length = count_of("max_length", kMaxLocalPartBytes);
    if (rule.min_length > rule.max_length)
      throw InputError(file, line, "provider.min_length", "is greater than max_length");
    auto allowed = text_of("allowed");
    if (!allowed) throw InputError(file, line, "provider.allowed", "is required (e.g. \"a-z0-9.\")");
    rule.allowed = parse_charset(*allowed);
    if (auto v = text_of("first")) rule.first = parse_charset(*v);
    if (auto v = text_of("last")) rule.last = parse_charset(*v);
    if (auto v = text_of("no_repeat")) rule.no_repeat = parse_charset(*v);
    if (auto v = text_of("ignore")) rule.ignore = parse_charset(*v);
    if (auto v = text_of("subaddress")) {
      if (v->size() != 1) throw InputError(file, line, "provider.subaddress", "must be one character");
      rule.subaddress = (*v)[0];
    }
    if (const toml::node* node = t->get("max_count")) {
      const toml::table* counts = node->as_table();
      if (!counts) throw InputError(file, node->source().begin.line, "provider.max_count", "must be a table");
      for (const auto& [key, value] : *counts) {
        auto n = value.value<std::int64_t>();
        if (key.str().size() != 1 || !n || *n < 0)
          throw InputError(file, value.source().begin.line, "provider.max_count",
                           "must map one character to a count, e.g. { \".\" = 1 }");
        rule.max_count.emplace_back(static_cast<unsigned char>(key.str()[0]), static_cast<std::size_t>(*n));
      }
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

// A set of 64-bit hashes in one flat array: 8-16 bytes per entry instead of a node
// per entry (a million-recipient campaign: ~16 MB instead of ~40 MB). A false
// duplicate needs a 64-bit hash collision (~3e-8 at a million addresses).
class HashSet64 {
 public:
  // Returns false if `h` was already present.
  bool insert(std::uint64_t h) {
    if (h == kEmpty) h = 1;
    if ((size_ + 1) * 2 > slots_.size()) grow();
    if (!place(slots_, h)) return false;
    ++size_;
    return true;
  }

 private:
  static constexpr std::uint64_t kEmpty = 0;
  static constexpr std::size_t kInitialSlots = 1024;
  static bool place(std::vector<std::uint64_t>& slots, std::uint64_t h) {
    const std::size_t mask = slots.size() - 1;
    // Mixes the bits: std::hash results may be weak in the low bits.
    std::size_t i = static_cast<std::size_t>((h * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (slots[i] != kEmpty) {
      if (slots[i] == h) return false;
      i = (i + 1) & mask;
    }
    slots[i] = h;
    return true;
  }
  void grow() {
    std::vector<std::uint64_t> bigger(std::max(kInitialSlots, slots_.size() * 2), kEmpty);
    for (std::uint64_t h : slots_)
      if (h != kEmpty) place(bigger, h);
    slots_.swap(bigger);
  }
  std::vector<std::uint64_t> slots_;
  std::size_t size_ = 0;
};

}  // namespace

const char* to_string(Verdict verdict) { return kVerdictNames[static_cast<std::size_t>(verdict)]; }

std::optional<Verdict> verdict_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kVerdictCount; ++i)
    if (name == kVerdictNames[i]) return static_cast<Verdict>(i);
  return std::nullopt;
}

const char* to_string(Policy policy) {
  switch (policy) {
    case Policy::off: return "off";
    case Policy::warn: return "warn";
    case Policy::reject: return "reject";
  }
  return "?";
}

std::optional<Policy> policy_from_string(std::string_view name) {
  if (name == "off") return Policy::off;
  if (name == "warn") return Policy::warn;
  if (name == "reject") return Policy::reject;
  return std::nullopt;
}

const char* to_string(Action action) {
  switch (action) {
    case Action::accept: return "accept";
    case Action::warn: return "warn";
    case Action::reject: return "reject";
  }
  return "?";
}

std::vector<Verdict> VerdictSet::list() const {
  std::vector<Verdict> out;
  for (std::size_t i = 0; i < kVerdictCount; ++i)
    if (has(static_cast<Verdict>(i))) out.push_back(static_cast<Verdict>(i));
  return out;
}

struct Hygiene::Lists {
  StringSet disposable;
  StringSet roles;
  StringSet trap_words;
  std::vector<std::vector<std::string>> trap_phrases;  // "abuse-test": words in a row
  std::vector<std::string> typo_targets;
  StringSet known_domains;  // never typo suspects themselves
  std::vector<ProviderSyntaxRule> providers;
  StringMap<std::size_t> provider_of;  // domain -> index
};

struct Hygiene::DomainFacts {
  bool disposable = false;
  std::string typo_target;                 // "" if none
  const ProviderSyntaxRule* provider = nullptr;  // rules of the domain's provider
};

Hygiene::Hygiene(HygieneOptions options) : options_(std::move(options)) {
  if (options_[Verdict::syntax] != Policy::reject)
    throw InputError("[hygiene]", 0, "policy.syntax", "must be reject: an invalid address cannot be sent to");
  auto lists = std::make_unique<Lists>();
  auto add_trap = [&](const std::string& keyword) {
    auto words = words_of(keyword);
    if (words.size() == 1) lists->trap_words.insert(words[0]);
    else if (words.size() > 1) lists->trap_phrases.push_back(std::move(words));
  };
  auto add_typo_target = [&](const std::string& domain) {
    if (lists->known_domains.insert(domain).second) lists->typo_targets.push_back(domain);
  };
  for_each_entry(hygiene_data::kDisposableDomains, [&](std::string d, std::size_t) { lists->disposable.insert(std::move(d)); });
  for_each_entry(hygiene_data::kRoles, [&](std::string r, std::size_t) { lists->roles.insert(std::move(r)); });
  for_each_entry(hygiene_data::kTrapKeywords, [&](std::string k, std::size_t) { add_trap(k); });
  for_each_entry(hygiene_data::kTypoDomains, [&](std::string d, std::size_t) { add_typo_target(d); });

  for (const auto& path : options_.disposable_files) {
    const std::string text = read_list_file(path);
    for_each_entry(text, [&](std::string d, std::size_t line) {
      if (d.find('.') == std::string::npos || d.find_first_of(" \t@") != std::string::npos)
        throw InputError(path.string(), line, "", "not a domain: \"" + d + "\"");
      lists->disposable.insert(std::move(d));
    });
  }
  for (const auto& r : options_.roles) lists->roles.insert(text::lower_ascii(text::trim(r)));
  for (const auto& k : options_.trap_keywords) add_trap(text::lower_ascii(text::trim(k)));
  for (const auto& d : options_.typo_domains) add_typo_target(text::lower_ascii(text::trim(d)));

  lists->providers = parse_provider_rules(hygiene_data::kProviderSyntax, "data/provider-syntax.toml");
  if (options_.provider_syntax_file) {
    auto extra = parse_provider_rules(read_list_file(*options_.provider_syntax_file), options_.provider_syntax_file->string());
    for (auto& rule : extra) {
      auto same = std::find_if(lists->providers.begin(), lists->providers.end(),
                               [&](const ProviderSyntaxRule& r) { return r.name == rule.name; });
      if (same != lists->providers.end()) *same = std::move(rule);
      else lists->providers.push_back(std::move(rule));
    }
  }
  for (std::size_t i = 0; i < lists->providers.size(); ++i)
    for (const auto& d : lists->providers[i].domains) {
      lists->provider_of[d] = i;
      lists->known_domains.insert(d);
    }
  lists_ = std::move(lists);
}

Hygiene::~Hygiene() = default;

Hygiene::DomainFacts Hygiene::domain_facts(const std::string& domain) const {
  DomainFacts facts;
  // The domain or any parent: "x.mailinator.com" is as disposable as "mailinator.com".
  for (std::size_t pos = 0; pos != std::string::npos; pos = domain.find('.', pos + 1)) {
    std::string_view suffix = std::string_view(domain).substr(pos == 0 ? 0 : pos + 1);
    if (suffix.find('.') == std::string_view::npos) break;  // a bare TLD is never listed
    if (lists_->disposable.contains(suffix)) {
      facts.disposable = true;
      break;
    }
  }
  if (auto it = lists_->provider_of.find(domain); it != lists_->provider_of.end())
    facts.provider = &lists_->providers[it->second];
  if (!lists_->known_domains.count(domain)) {
    const auto [head, tld] = head_and_tld(domain);
    for (const auto& target : lists_->typo_targets) {
      if (!one_edit_apart(domain, target)) continue;
      const auto [target_head, target_tld] = head_and_tld(target);
      if (head == target_head || std::min(head.size(), target_head.size()) >= kMinTypoNameLength) {
        facts.typo_target = target;
        break;
      }
    }
  }
  return facts;
}

void Hygiene::judge_parsed(const ParsedAddress& parsed, std::string_view address, const DomainFacts& facts,
                           Judgement& j) const {
  const auto& policy = options_;
  const LowerLocal lower(parsed.local);
  if (policy[Verdict::provider_syntax] != Policy::off && facts.provider && !facts.provider->allows(lower.view()))
    j.verdicts.add(Verdict::provider_syntax);
  if (policy[Verdict::disposable] != Policy::off && facts.disposable) j.verdicts.add(Verdict::disposable);
  const bool quoted = !parsed.local.empty() && parsed.local.front() == '"';
  if (policy[Verdict::role] != Policy::off && !quoted) {
    if (lists_->roles.contains(lower.view().substr(0, lower.view().find('+')))) j.verdicts.add(Verdict::role);
  }
  if (policy[Verdict::trap] != Policy::off) {
    bool trap = any_word(lower.view(), [&](std::string_view w) { return lists_->trap_words.contains(w); });
    std::optional<std::vector<std::string>> words;  // split once, and only if a phrase may match
    for (const auto& phrase : lists_->trap_phrases) {
      if (trap) break;
      if (lower.view().find(phrase.front()) == std::string_view::npos) continue;  // cheap test first
      if (!words) words = words_of(parsed.local);
      trap = std::search(words->begin(), words->end(), phrase.begin(), phrase.end()) != words->end();
    }
    if (trap) j.verdicts.add(Verdict::trap);
  }
  if (policy[Verdict::typo_suspect] != Policy::off && !facts.typo_target.empty()) {
    j.verdicts.add(Verdict::typo_suspect);
    j.suggestion = std::string(address.substr(0, address.rfind('@') + 1)) + facts.typo_target;
  }
}

Judgement Hygiene::judge_address(std::string_view address) const {
  // Without DNS, a suppression list or earlier addresses, a Screening finds exactly these verdicts.
  return Screening(*this, nullptr).judge(address);
}

void Hygiene::decide(Judgement& j) const {
  j.action = Action::accept;
  j.reason.reset();
  for (Verdict v : kReasonPriority) {
    if (!j.verdicts.has(v)) continue;
    if (options_[v] == Policy::reject) {
      j.action = Action::reject;
      j.reason = v;
      return;
    }
    if (options_[v] == Policy::warn) j.action = Action::warn;
  }
}

// --- Screening

struct Screening::State {
  struct DomainInfo {
    Hygiene::DomainFacts facts;
    MailHost host = MailHost::unknown;
    bool resolved = false;
    bool pending = false;
  };
  StringMap<DomainInfo> domains;
  std::string key;  // scratch for duplicate keys
  std::vector<std::string> pending;
  HashSet64 seen;

  DomainInfo& info(const Hygiene& hygiene, const std::string& domain) {
    auto it = domains.find(domain);
    if (it == domains.end()) it = domains.emplace(domain, DomainInfo{hygiene.domain_facts(domain)}).first;
    return it->second;
  }
};

Screening::Screening(const Hygiene& hygiene, MailHostLookup* dns, SuppressionLookup suppressed)
    : hygiene_(hygiene),
      dns_(hygiene.options()[Verdict::no_mail_host] == Policy::off ? nullptr : dns),
      suppressed_(hygiene.options()[Verdict::suppressed] == Policy::off ? SuppressionLookup{} : std::move(suppressed)),
      state_(std::make_unique<State>()) {}

Screening::~Screening() = default;

void Screening::note(std::string_view address) {
  if (!dns_) return;
  AddressCheck check = parse_address(address, hygiene_.options().syntax);
  if (!check.address || check.address->ip_literal) return;
  auto& info = state_->info(hygiene_, check.address->domain);
  if (info.resolved || info.pending) return;
  info.pending = true;
  state_->pending.push_back(check.address->domain);
}

void Screening::resolve_noted() {
  if (!dns_ || state_->pending.empty()) return;
  std::vector<MailHost> hosts = dns_->lookup(state_->pending);
  dns_lookups_ += state_->pending.size();
  for (std::size_t i = 0; i < state_->pending.size() && i < hosts.size(); ++i) {
    auto& info = state_->domains[state_->pending[i]];
    info.host = hosts[i];
    info.resolved = true;
    info.pending = false;
  }
  state_->pending.clear();
  state_->pending.shrink_to_fit();
}

Judgement Screening::judge(std::string_view address) {
  Judgement j;
  const HygieneOptions& options = hygiene_.options();
  AddressCheck check = parse_address(address, options.syntax);
  if (!check.address) {
    j.verdicts.add(Verdict::syntax);
    j.problem = std::move(check.problem);
    hygiene_.decide(j);
    return j;
  }
  const ParsedAddress& parsed = *check.address;
  if (!parsed.ip_literal) {
    auto& info = state_->info(hygiene_, parsed.domain);
    hygiene_.judge_parsed(parsed, address, info.facts, j);
    if (dns_) {
      if (!info.resolved) {
        info.host = dns_->lookup({parsed.domain}).at(0);
        info.resolved = true;
        ++dns_lookups_;
      }
      if (info.host == MailHost::none) j.verdicts.add(Verdict::no_mail_host);
    }
  }
  if (options[Verdict::duplicate] != Policy::off) {
    std::string& key = state_->key;
    key.assign(options.fold_local_case ? LowerLocal(parsed.local).view() : parsed.local);
    key += '@';
    key += parsed.domain;
    if (!state_->seen.insert(std::hash<std::string_view>{}(key))) j.verdicts.add(Verdict::duplicate);
  }
  if (suppressed_) {
    if (auto reason = suppressed_(text::lower_ascii(address))) {
      j.verdicts.add(Verdict::suppressed);
      j.suppression = std::move(*reason);
    }
  }
  hygiene_.decide(j);
  return j;
}

}  // namespace kurier::engine
