// List hygiene (engine/intake/hygiene/hygiene.h): every verdict with addresses that must and must
// not get it, policies, kurier.toml's [hygiene], no_mail_host against a real dnsmasq,
// and intake into a real RocksDB queue (rejected rows end `suppressed` with reason).
#include <gtest/gtest.h>

#include <toml++/toml.h>

#include "engine/intake/campaign.h"
#include "engine/core/config.h"
#include "engine/intake/hygiene/hygiene.h"
#include "engine/intake/hygiene/hygiene_dns.h"
#include "engine/core/input_error.h"
#include "queue/store.h"
#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"
#include "tests/engine/input_error_helpers.h"

namespace kurier::engine {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::string> names(const Judgement& j) {
  std::vector<std::string> out;
  for (Verdict v : j.verdicts.list()) out.emplace_back(to_string(v));
  return out;
}

bool has(const Judgement& j, Verdict v) { return j.verdicts.has(v); }

const Hygiene& defaults() {
  static const Hygiene rules;
  return rules;
}

// --- syntax

TEST(HygieneSyntax, TrickyValidAddressesPass) {
  for (const char* a : {"\"john doe\"@example.com", "user+tag@example.com", "o'brien@example.ie",
                        "user@sub.domain.example", "jörg@bücher.de", "müller@bücher.de", "mueller@xn--bcher-kva.de",
                        "\"a\\\"b\"@example.com", "first.last@example.co.uk", "x_y-z=1@e-f.example",
                        "Straße@faß.de"}) {
    const Judgement j = defaults().judge_address(a);
    EXPECT_FALSE(has(j, Verdict::syntax)) << a << ": " << j.problem;
    EXPECT_EQ(j.action, Action::accept) << a << " " << testing::PrintToString(names(j));
  }
}

TEST(HygieneSyntax, IdnDomainsBecomeALabels) {
  auto check = parse_address("müller@Bücher.DE");
  ASSERT_TRUE(check.address) << check.problem;
  EXPECT_EQ(check.address->domain, "xn--bcher-kva.de");
  EXPECT_EQ(check.address->local, "müller");
  // Non-transitional (IDNA2008): ß stays ß instead of becoming "ss".
  EXPECT_EQ(parse_address("a@faß.de").address->domain, "xn--fa-hia.de");
}

TEST(HygieneSyntax, LengthLimits) {
  const std::string local64(64, 'a');
  EXPECT_FALSE(has(defaults().judge_address(local64 + "@example.com"), Verdict::syntax));
  const Judgement too_long = defaults().judge_address(local64 + "a@example.com");
  EXPECT_TRUE(has(too_long, Verdict::syntax));
  EXPECT_EQ(too_long.problem, "local part longer than 64 bytes");
  // 64 + 1 + 189 = 254 bytes: the limit.
  const std::string domain189 = std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(58, 'd') + ".de";
  ASSERT_EQ(domain189.size(), 189u);
  EXPECT_FALSE(has(defaults().judge_address(local64 + "@" + domain189), Verdict::syntax));
  const Judgement j255 = defaults().judge_address(local64 + "@e" + domain189);
  EXPECT_TRUE(has(j255, Verdict::syntax));
  EXPECT_EQ(j255.problem, "address longer than 254 bytes");
  EXPECT_TRUE(has(defaults().judge_address("a@" + std::string(64, 'x') + ".de"), Verdict::syntax)) << "64-byte label";
}

TEST(HygieneSyntax, BrokenAddressesAreRejectedWithTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plainaddress", "no '@'"},
      {"", "empty address"},
      {"@example.com", "empty local part"},
      {"user@", "empty domain"},
      {"user@localhost", "domain has no dot"},
      {".user@example.com", "local part starts or ends with '.'"},
      {"us..er@example.com", "consecutive dots in local part"},
      {"us er@example.com", "character ' ' not allowed in local part"},
      {"user@exa_mple.com", "character '_' not allowed in domain"},
      {"user@-example.com", "domain label starts or ends with '-'"},
      {"user@example..com", "empty label in domain"},
      {"user@10.0.0.1", "top-level domain is numeric (an IP address needs brackets)"},
      {"user@[192.0.2.1]", "IP-literal domains are not accepted"},
      {"\"unterminated@example.com", "unterminated quoted local part"},
      {"user@☃.com", "not a valid internationalized domain: string contains a disallowed character"},
      {"user@xn--zz.de", "not a valid internationalized domain: string contains invalid punycode data"},
      {"us\xff" "er@example.com", "local part is not valid UTF-8"},
  };
  for (const auto& [address, problem] : cases) {
    const Judgement j = defaults().judge_address(address);
    EXPECT_EQ(names(j), std::vector<std::string>{"syntax"}) << address;
    EXPECT_EQ(j.action, Action::reject) << address;
    EXPECT_EQ(j.reason, Verdict::syntax);
    EXPECT_EQ(j.problem, problem) << address;
  }
}

TEST(HygieneSyntax, SmtpUtf8AndIpLiteralsFollowTheRules) {
  HygieneOptions options;
  options.syntax.smtputf8 = false;
  options.syntax.ip_literals = true;
  const Hygiene rules(options);
  const Judgement utf8_local = rules.judge_address("jörg@bücher.de");
  EXPECT_TRUE(has(utf8_local, Verdict::syntax));
  EXPECT_EQ(utf8_local.problem, "non-ASCII local part (SMTPUTF8 addresses are not allowed)");
  EXPECT_FALSE(has(rules.judge_address("joerg@bücher.de"), Verdict::syntax)) << "IDN domains need no SMTPUTF8";
  EXPECT_EQ(rules.judge_address("user@[192.0.2.1]").action, Action::accept);
  EXPECT_EQ(rules.judge_address("user@[IPv6:2001:db8::1]").action, Action::accept);
  EXPECT_TRUE(has(rules.judge_address("user@[999.0.2.1]"), Verdict::syntax));
  EXPECT_TRUE(has(rules.judge_address("user@[IPv6:zz::1]"), Verdict::syntax));
}

// --- provider_syntax

TEST(HygieneProviderSyntax, FlagsWhatTheProviderCannotHaveIssued) {
  for (const char* a : {"abc@gmail.com", "j.o.h.n.d@gmail.com", "john_smith@gmail.com", "\"john doe\"@gmail.com",
                        "jörgmüller@gmail.com", "1abc@aol.com", "ab@aol.com", "john.doe@aol.com",
                        "abcdefghijklmnopq@aol.com", "abc@yahoo.com", "1john@yahoo.com", "john.q.public@yahoo.com",
                        "_john@outlook.com", "john.@hotmail.com" /* syntax too */}) {
    const Judgement j = defaults().judge_address(a);
    if (has(j, Verdict::syntax)) continue;
    EXPECT_TRUE(has(j, Verdict::provider_syntax)) << a;
    EXPECT_EQ(j.action, Action::warn) << a;
  }
  for (const char* a : {"john.smith@gmail.com", "John.Smith+news@GMail.com", "jsmith@googlemail.com",
                        "johndoe@aol.com", "jd1980@aol.com", "john_doe@yahoo.com", "john.doe@yahoo.com",
                        "john-news@yahoo.com", "john.doe_1+x@outlook.com", "anna-lena@hotmail.de",
                        "ab@example.com", "_x@example.com"}) {
    EXPECT_FALSE(has(defaults().judge_address(a), Verdict::provider_syntax)) << a;
  }
}

// --- disposable

TEST(HygieneDisposable, ListedDomainsAndTheirSubdomains) {
  EXPECT_EQ(names(defaults().judge_address("x@mailinator.com")), std::vector<std::string>{"disposable"});
  EXPECT_EQ(defaults().judge_address("x@mailinator.com").action, Action::reject);
  EXPECT_TRUE(has(defaults().judge_address("x@Sub.Mailinator.com"), Verdict::disposable));
  EXPECT_TRUE(has(defaults().judge_address("x@yopmail.com"), Verdict::disposable));
  EXPECT_FALSE(has(defaults().judge_address("x@mailinatorx.test"), Verdict::disposable));
  EXPECT_FALSE(has(defaults().judge_address("x@example.com"), Verdict::disposable));
  EXPECT_FALSE(has(defaults().judge_address("x@com.mailinator"), Verdict::disposable));
}

TEST(HygieneDisposable, UsersAddListsAndBadListsNameFileAndLine) {
  test::TempDir dir;
  test::write_file(dir.path() / "more.txt", "# our own\n\nthrowaway.test\n");
  HygieneOptions options;
  options.disposable_files = {dir.path() / "more.txt"};
  const Hygiene rules(options);
  EXPECT_TRUE(has(rules.judge_address("a@throwaway.test"), Verdict::disposable));
  EXPECT_TRUE(has(rules.judge_address("a@mailinator.com"), Verdict::disposable)) << "the built-in list stays";

  test::write_file(dir.path() / "bad.txt", "ok.test\nnot a domain\n");
  options.disposable_files = {dir.path() / "bad.txt"};
  try {
    Hygiene bad(options);
    FAIL() << "accepted a malformed list";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), (dir.path() / "bad.txt").string());
    EXPECT_EQ(e.line(), 2u);
  }
  options.disposable_files = {dir.path() / "missing.txt"};
  EXPECT_THROW(Hygiene missing(options), InputError);
}

// --- role

TEST(HygieneRole, Rfc2142AndNoReplyButNotPeople) {
  for (const char* a : {"info@example.com", "Postmaster@example.com", "abuse@example.com", "webmaster@example.com",
                        "noreply@example.com", "no-reply+x@example.com", "sales@example.com", "support@example.com"}) {
    const Judgement j = defaults().judge_address(a);
    EXPECT_TRUE(has(j, Verdict::role)) << a;
    EXPECT_EQ(j.action, Action::warn) << a << ": role accounts warn by default";
  }
  for (const char* a : {"information@example.com", "anna.info@example.com", "infoanna@example.com",
                        "\"info\"@example.com", "salesman@example.com"})
    EXPECT_FALSE(has(defaults().judge_address(a), Verdict::role)) << a;
  HygieneOptions options;
  options.roles = {"Kundenservice"};
  EXPECT_TRUE(has(Hygiene(options).judge_address("kundenservice@example.de"), Verdict::role));
}

// --- trap

TEST(HygieneTrap, KeywordsAsWordsOfTheLocalPart) {
  for (const char* a : {"spam@example.com", "spam.box@example.com", "my-spam@example.com", "trash123@example.com",
                        "junk@example.com", "muell@example.de", "müll@example.de", "abuse-test@example.com",
                        "spamtrap@example.com", "Trash_Mail@example.com"}) {
    const Judgement j = defaults().judge_address(a);
    EXPECT_TRUE(has(j, Verdict::trap)) << a;
    EXPECT_EQ(j.action, Action::reject) << a;
    EXPECT_EQ(j.reason, Verdict::trap) << a;
  }
  for (const char* a : {"spammy@example.com", "junkers@example.de", "abuse@example.com", "test@example.com",
                        "trashy-novels@example.com", "mueller@example.de"})
    EXPECT_FALSE(has(defaults().judge_address(a), Verdict::trap)) << a;
  HygieneOptions options;
  options.trap_keywords = {"honig-topf"};
  EXPECT_TRUE(has(Hygiene(options).judge_address("x.honig-topf@example.de"), Verdict::trap));
  EXPECT_FALSE(has(Hygiene(options).judge_address("honig@example.de"), Verdict::trap));
}

// --- typo_suspect

TEST(HygieneTypo, OneEditFromAProviderWithASuggestionNeverARewrite) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"anna@gamil.com", "anna@gmail.com"},        {"Anna.B@Hotmal.com", "Anna.B@hotmail.com"},
      {"x@yaho.com", "x@yahoo.com"},               {"x@gmx.dee", "x@gmx.de"},
      {"x@t-onlne.de", "x@t-online.de"},           {"x@gmail.con", "x@gmail.com"},
      {"x@outlok.com", "x@outlook.com"},           {"x@web.dr", "x@web.de"},
  };
  for (const auto& [address, suggestion] : cases) {
    const Judgement j = defaults().judge_address(address);
    EXPECT_TRUE(has(j, Verdict::typo_suspect)) << address;
    EXPECT_EQ(j.suggestion, suggestion) << address;
    EXPECT_EQ(j.action, Action::warn) << address;
  }
  // "wbe.de", "mi.com": a short name one letter off is as likely another real domain.
  for (const char* a : {"x@gmail.com", "x@gmx.net", "x@gmx.at", "x@mi.com", "x@wbe.de", "x@example.com", "x@web.de",
                        "x@hotmail.de", "x@gmailcom.org", "x@mygmail.company"}) {
    const Judgement j = defaults().judge_address(a);
    EXPECT_FALSE(has(j, Verdict::typo_suspect)) << a << " -> " << j.suggestion;
    EXPECT_EQ(j.suggestion, "");
  }
  // Typo-squatters run throw-away services on some of these: both verdicts, and the
  // disposable one rejects.
  const Judgement squatted = defaults().judge_address("anna@gmial.com");
  EXPECT_EQ(names(squatted), (std::vector<std::string>{"disposable", "typo_suspect"}));
  EXPECT_EQ(squatted.suggestion, "anna@gmail.com");
  EXPECT_EQ(squatted.action, Action::reject);
  EXPECT_EQ(squatted.reason, Verdict::disposable);
  // A domain added to the list is a target, and therefore never a suspect itself.
  HygieneOptions options;
  options.typo_domains = {"gmx.dee"};
  EXPECT_FALSE(has(Hygiene(options).judge_address("x@gmx.dee"), Verdict::typo_suspect));
}

// --- policies

TEST(HygienePolicy, OffHidesAVerdictWarnAndRejectDecideTheAction) {
  HygieneOptions options;
  options[Verdict::role] = Policy::reject;
  options[Verdict::disposable] = Policy::warn;
  options[Verdict::trap] = Policy::off;
  const Hygiene rules(options);
  auto role = rules.judge_address("info@example.com");
  EXPECT_EQ(role.action, Action::reject);
  EXPECT_EQ(role.reason, Verdict::role);
  EXPECT_EQ(rules.judge_address("a@mailinator.com").action, Action::warn);
  auto trap = rules.judge_address("spam@example.com");
  EXPECT_TRUE(trap.verdicts.empty());
  EXPECT_EQ(trap.action, Action::accept);
  // Several verdicts: all listed in order; the reason is the highest-priority reject.
  auto both = rules.judge_address("info@mailinator.com");
  EXPECT_EQ(names(both), (std::vector<std::string>{"disposable", "role"}));
  EXPECT_EQ(both.reason, Verdict::role);

  options[Verdict::syntax] = Policy::warn;
  EXPECT_THROW(Hygiene bad(options), InputError);
}

TEST(HygieneConfig, ReadsTheHygieneSectionAndNamesBadKeys) {
  test::TempDir dir;
  test::write_file(dir.path() / "lists" / "d.txt", "throwaway.test\n");
  test::write_file(dir.path() / "providers.toml",
                   "[[provider]]\nname = \"examplemail\"\ndomains = [\"examplemail.test\"]\nmin_length = 5\n"
                   "allowed = \"a-z\"\n");
  test::write_file(dir.path() / "kurier.toml",
                   "[hygiene]\nsmtputf8 = false\nip_literals = true\nfold_local_case = false\n"
                   "disposable_files = [\"lists/d.txt\"]\nroles = [\"kontor\"]\ntrap_keywords = [\"fangnetz\"]\n"
                   "typo_domains = [\"examplemail.test\"]\nprovider_syntax = \"providers.toml\"\n"
                   "[hygiene.policy]\nrole = \"reject\"\ntypo_suspect = \"off\"\n");
  Config config = load_config(dir.path() / "kurier.toml");
  const HygieneOptions& o = config.hygiene;
  EXPECT_FALSE(o.syntax.smtputf8);
  EXPECT_TRUE(o.syntax.ip_literals);
  EXPECT_FALSE(o.fold_local_case);
  EXPECT_EQ(o[Verdict::role], Policy::reject);
  EXPECT_EQ(o[Verdict::typo_suspect], Policy::off);
  EXPECT_EQ(o[Verdict::disposable], Policy::reject) << "unchanged default";
  const Hygiene rules(config.hygiene);
  EXPECT_TRUE(has(rules.judge_address("a@throwaway.test"), Verdict::disposable));
  EXPECT_EQ(rules.judge_address("kontor@example.com").action, Action::reject);
  EXPECT_TRUE(has(rules.judge_address("fangnetz@example.com"), Verdict::trap));
  EXPECT_TRUE(has(rules.judge_address("abc@examplemail.test"), Verdict::provider_syntax));
  EXPECT_FALSE(has(rules.judge_address("abcdef@examplemail.test"), Verdict::provider_syntax));
  EXPECT_FALSE(has(rules.judge_address("x@gmial.com"), Verdict::typo_suspect)) << "policy off";

  auto error_of = [&](const std::string& toml) {
    return test::file_input_error(dir.path() / "bad.toml", toml, [](const auto& file) { load_config(file); });
  };
  auto e = error_of("[verp]\nsecret = \"s\"\n[hygiene.policy]\nrole = \"maybe\"\n");
  EXPECT_EQ(e.line(), 4u);
  EXPECT_EQ(e.field(), "hygiene.policy.role");
  e = error_of("[hygiene.policy]\nsyntax = \"warn\"\n");
  EXPECT_EQ(e.field(), "hygiene.policy.syntax");
  e = error_of("[hygiene.policy]\nrol = \"warn\"\n");
  EXPECT_EQ(e.field(), "hygiene.policy.rol");
  e = error_of("[hygiene]\nroles = \"info\"\n");
  EXPECT_EQ(e.field(), "hygiene.roles");
  e = error_of("[hygiene]\ntypo = []\n");
  EXPECT_EQ(e.field(), "hygiene.typo");
}

// --- duplicate, suppressed (Screening)

TEST(HygieneScreening, DuplicatesCompareTheDomainCaseInsensitivelyAndItsIdnForms) {
  Screening screening(defaults(), nullptr);
  EXPECT_TRUE(screening.judge("anna@x.test").verdicts.empty());
  auto again = screening.judge("anna@X.TEST");
  EXPECT_EQ(names(again), std::vector<std::string>{"duplicate"});
  EXPECT_EQ(again.action, Action::reject);
  EXPECT_EQ(names(screening.judge("Anna@x.test")), std::vector<std::string>{"duplicate"}) << "folded by default";
  EXPECT_TRUE(screening.judge("anna@y.test").verdicts.empty());
  EXPECT_TRUE(screening.judge("jörg@bücher.de").verdicts.empty());
  EXPECT_EQ(names(screening.judge("jörg@xn--bcher-kva.de")), std::vector<std::string>{"duplicate"});
  EXPECT_EQ(names(screening.judge("broken")), std::vector<std::string>{"syntax"});
  EXPECT_EQ(names(screening.judge("broken")), std::vector<std::string>{"syntax"}) << "invalid: only syntax";

  HygieneOptions exact;
  exact.fold_local_case = false;
  const Hygiene rules(exact);
  Screening case_sensitive(rules, nullptr);
  EXPECT_TRUE(case_sensitive.judge("anna@x.test").verdicts.empty());
  EXPECT_TRUE(case_sensitive.judge("Anna@x.test").verdicts.empty()) << "local part compared exactly";
  EXPECT_EQ(names(case_sensitive.judge("anna@X.test")), std::vector<std::string>{"duplicate"});
}

TEST(HygieneScreening, SuppressionListWithItsReason) {
  std::vector<std::string> asked;
  Screening screening(defaults(), nullptr, [&](const std::string& address) -> std::optional<std::string> {
    asked.push_back(address);
    if (address == "gone@x.test") return "hard-bounce userunknown";
    return std::nullopt;
  });
  auto j = screening.judge("Gone@X.test");
  EXPECT_EQ(names(j), std::vector<std::string>{"suppressed"});
  EXPECT_EQ(j.suppression, "hard-bounce userunknown");
  EXPECT_EQ(j.reason, Verdict::suppressed);
  EXPECT_TRUE(screening.judge("here@x.test").verdicts.empty());
  EXPECT_EQ(asked, (std::vector<std::string>{"gone@x.test", "here@x.test"}));

  HygieneOptions off;
  off[Verdict::suppressed] = Policy::off;
  const Hygiene rules(off);
  Screening ignoring(rules, nullptr, [&](const std::string&) -> std::optional<std::string> { return "x"; });
  EXPECT_TRUE(ignoring.judge("gone@x.test").verdicts.empty());
}

// --- no_mail_host with a real dnsmasq

class HygieneDns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::find_program("dnsmasq").empty()) FAIL() << "dnsmasq is required (scripts/install-deps.sh)";
    dead_port_ = test::free_udp_port();
    dns_ = std::make_unique<test::Dnsmasq>(std::vector<std::string>{
        "mx-host=mx.test,mail.mx.test,10", "host-record=mail.mx.test,127.0.5.1",
        "host-record=aonly.test,127.0.5.2",
        "dns-rr=nullmx.test,15,000000",
        "txt-record=txtonly.test,\"v=spf1 -all\"",
        // Forwarded to a port where nothing answers: SERVFAIL or a timeout.
        "server=/down.test/127.0.0.1#" + std::to_string(dead_port_)});
  }
  std::unique_ptr<MailHostLookup> lookup() {
    return make_dns_mail_host_lookup({dns_->server()}, std::chrono::milliseconds(300));
  }
  std::uint16_t dead_port_ = 0;
  std::unique_ptr<test::Dnsmasq> dns_;
};

TEST_F(HygieneDns, MailHostsFromMxAAndNullMxNxdomainAndTemporaryFailures) {
  auto dns = lookup();
  auto hosts = dns->lookup({"mx.test", "aonly.test", "nullmx.test", "missing.test", "txtonly.test", "x.down.test",
                            "refused.example"});
  EXPECT_EQ(hosts, (std::vector<MailHost>{MailHost::exists, MailHost::exists, MailHost::none, MailHost::none,
                                          MailHost::none, MailHost::unknown, MailHost::unknown}));
}

TEST_F(HygieneDns, NoMailHostOncePerDomainAndNeverForATemporaryFailure) {
  auto dns = lookup();
  Screening screening(defaults(), dns.get());
  const std::vector<std::string> input = {"a@mx.test",     "b@MX.test",      "c@aonly.test", "d@nullmx.test",
                                          "e@missing.test", "f@missing.test", "g@x.down.test", "h@refused.example"};
  for (const auto& a : input) screening.note(a);
  screening.resolve_noted();
  EXPECT_EQ(screening.dns_lookups(), 6u) << "one lookup per distinct domain";
  std::map<std::string, std::vector<std::string>> verdicts;
  for (const auto& a : input) verdicts[a] = names(screening.judge(a));
  EXPECT_TRUE(verdicts["a@mx.test"].empty());
  EXPECT_TRUE(verdicts["b@MX.test"].empty());
  EXPECT_TRUE(verdicts["c@aonly.test"].empty()) << "A only: implicit MX";
  EXPECT_EQ(verdicts["d@nullmx.test"], std::vector<std::string>{"no_mail_host"});
  EXPECT_EQ(verdicts["e@missing.test"], std::vector<std::string>{"no_mail_host"});
  EXPECT_EQ(verdicts["f@missing.test"], std::vector<std::string>{"no_mail_host"});
  EXPECT_TRUE(verdicts["g@x.down.test"].empty()) << "SERVFAIL/timeout is not no_mail_host";
  EXPECT_TRUE(verdicts["h@refused.example"].empty()) << "REFUSED is not no_mail_host";
  EXPECT_EQ(screening.dns_lookups(), 6u) << "judging asked nothing again";
  EXPECT_EQ(dns_->query_count("MX", "mx.test"), 1);
  EXPECT_EQ(dns_->query_count("MX", "missing.test"), 1);

  // Without a first pass each new domain is looked up when first seen, then cached.
  Screening lazy(defaults(), dns.get());
  EXPECT_EQ(names(lazy.judge("x@txtonly.test")), std::vector<std::string>{"no_mail_host"});
  EXPECT_EQ(names(lazy.judge("y@txtonly.test")), std::vector<std::string>{"no_mail_host"});
  EXPECT_EQ(lazy.dns_lookups(), 1u);
  EXPECT_EQ(lazy.judge("x@nullmx.test").action, Action::reject);
}

// --- intake: rejected rows stay in the campaign as `suppressed` with their reason

TEST_F(HygieneDns, IntakeStoresRejectedRowsSuppressedWithTheVerdictAndQueuesWarnedOnes) {
  test::TempDir dir;
  auto store = queue::open_rocksdb_store((dir.path() / "queue").string());
  store->suppress({"blocked@mx.test", "complaint", 1});
  test::write_file(dir.path() / "template.eml", "Subject: Hi\n\nHello {{name}}\n");
  test::write_file(dir.path() / "campaign.toml",
                   "id = \"h1\"\nfrom = \"News <news@sender.test>\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
  test::write_file(dir.path() / "recipients.csv",
                   "email,name\n"
                   "ok@mx.test,A\n"
                   "broken-address,B\n"
                   "OK@mx.test,C\n"
                   "blocked@mx.test,D\n"
                   "spam@mx.test,E\n"
                   "x@nullmx.test,F\n"
                   "x@mailinator.com,G\n"
                   "info@mx.test,H\n"
                   "anna@gamil.com,I\n"
                   "y@x.down.test,J\n");
  auto dns = lookup();
  const Hygiene rules;
  IntakeResult r = submit_campaign(*store, load_campaign(dir.path() / "campaign.toml"), 1000, {},
                                   IntakeHygiene{&rules, dns.get()});
  EXPECT_EQ(r.rows, 10u);
  EXPECT_EQ(r.queued, 4u);  // ok@, info@ (warn), anna@gamil.com (warn), y@x.down.test (DNS unknown)
  EXPECT_EQ(r.suppressed, 6u);
  EXPECT_EQ(r.warned, 2u);
  EXPECT_EQ(r.verdicts, (std::map<std::string, std::uint64_t>{{"syntax", 1}, {"duplicate", 1}, {"suppressed", 1},
                                                               {"trap", 1}, {"no_mail_host", 1}, {"disposable", 1},
                                                               {"role", 1}, {"typo_suspect", 1}}));
  std::map<std::string, std::pair<queue::State, std::string>> by_address;
  store->for_each_recipient(r.id, [&](const queue::Recipient& rec) {
    by_address[rec.address + "/" + rec.fields[1]] = {rec.status.state, rec.status.reason};
    return true;
  });
  using S = queue::State;
  EXPECT_EQ(by_address["ok@mx.test/A"], std::make_pair(S::queued, std::string()));
  EXPECT_EQ(by_address["broken-address/B"], std::make_pair(S::suppressed, std::string("syntax: no '@'")));
  EXPECT_EQ(by_address["OK@mx.test/C"], std::make_pair(S::suppressed, std::string("duplicate")));
  EXPECT_EQ(by_address["blocked@mx.test/D"], std::make_pair(S::suppressed, std::string("suppressed: complaint")));
  EXPECT_EQ(by_address["spam@mx.test/E"], std::make_pair(S::suppressed, std::string("trap")));
  EXPECT_EQ(by_address["x@nullmx.test/F"], std::make_pair(S::suppressed, std::string("no_mail_host")));
  EXPECT_EQ(by_address["x@mailinator.com/G"], std::make_pair(S::suppressed, std::string("disposable")));
  EXPECT_EQ(by_address["info@mx.test/H"], std::make_pair(S::queued, std::string()));
  EXPECT_EQ(by_address["anna@gamil.com/I"], std::make_pair(S::queued, std::string())) << "never rewritten";
  EXPECT_EQ(by_address["y@x.down.test/J"], std::make_pair(S::queued, std::string()));
  EXPECT_EQ(dns_->query_count("MX", "mx.test"), 1) << "each domain looked up once";
  queue::ScheduleCursor cursor;
  EXPECT_EQ(store->due(1000, 100, cursor).size(), 4u) << "rejected rows are never scheduled";
}

}  // namespace
}  // namespace kurier::engine
