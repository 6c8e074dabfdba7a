// kurier dkim keygen / check (engine/cli/dkim_command.h). Main thread; the check blocks on
// one DNS query. Key problems and bad names are bad input (exit 2), printed here.
#include "engine/cli/dkim_command.h"

#include <iostream>
#include <stdexcept>
#include <vector>
#include <CLI/CLI.hpp>

#include "dkim/signer.h"
#include "dns/txt_lookup.h"
#include "engine/core/config.h"
#include "engine/cli/cli_support.h"
#include "engine/cli/commands.h"

namespace kurier::engine {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitMismatch = 1;  // also: runtime failure (the key could not be written, DNS failed)
constexpr int kExitBadInput = 2;  // also: `dkim check` found no record

}  // namespace

int dkim_keygen_command(const DkimKeygenOptions& options) {
  dkim::Algorithm algorithm;
  if (options.algorithm == "rsa") {
    algorithm = dkim::Algorithm::rsa_sha256;
  } else if (options.algorithm == "ed25519") {
    algorithm = dkim::Algorithm::ed25519_sha256;
  } else {
    std::cerr << "kurier: dkim keygen: --algorithm must be rsa or ed25519, not '" << options.algorithm << "'\n";
    return kExitBadInput;
  }
  const std::filesystem::path out = options.out.value_or(std::filesystem::path(options.selector + ".private"));
  if (std::filesystem::exists(out)) {
    std::cerr << "kurier: dkim keygen: " << out.string() << " already exists; refusing to overwrite a key\n";
    return kExitBadInput;
  }
  try {
    const std::string record = dkim::keygen(algorithm, options.domain, options.selector, out);
    std::cout << record << "\n";
    std::cerr << "kurier: wrote the private key to " << out.string() << " (mode 0600); publish the record above\n";
    return kExitOk;
  } catch (const std::invalid_argument& e) {
    std::cerr << "kurier: dkim keygen: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const dkim::KeyError& e) {
    // Created between the check above and open(O_EXCL), or not writable.
    std::cerr << "kurier: " << e.what() << "\n";
    return std::filesystem::exists(out) ? kExitBadInput : kExitMismatch;
  }
}

int dkim_check_command(const DkimCheckOptions& options) {
  std::string expected;
  std::string record_name;
  try {
    // The checks a campaign with this key gets: names, key file, key type and size.
    (void)dkim::Signer::create({dkim::KeySpec{options.domain, options.selector, options.key}}, options.domain);
    expected = dkim::public_record(options.key);
    record_name = options.selector + "._domainkey." + options.domain;
  } catch (const dkim::KeyError& e) {
    std::cerr << "kurier: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    std::cerr << "kurier: dkim check: " << e.what() << "\n";
    return kExitBadInput;
  }

  dns::ResolverOptions resolver;
  if (options.dns) {
    resolver.servers = {*options.dns};
  } else if (options.config) {
    const Config config = load_config(options.config);
    resolver.servers = config.dns.servers;
    resolver.timeout = config.dns.timeout;
  }
  dns::TxtResult result;
  try {
    result = dns::lookup_txt(record_name, resolver);
  } catch (const std::runtime_error& e) {  // a malformed --dns or [dns] servers entry
    std::cerr << "kurier: dkim check: " << e.what() << "\n";
    return kExitBadInput;
  }
  const std::string publish = dkim::zone_record(options.domain, options.selector, expected);

  switch (result.status) {
    case dns::TxtStatus::nxdomain:
    case dns::TxtStatus::nodata:
      std::cout << "missing: no TXT record at " << record_name << " (" << result.detail << "); publish:\n"
                << publish << "\n";
      return kExitBadInput;
    case dns::TxtStatus::temporary:
      std::cerr << "kurier: dkim check: lookup of " << record_name << " TXT failed: " << result.detail << "\n";
      return kExitMismatch;
    case dns::TxtStatus::ok:
      break;
  }
  // RFC 6376 §3.6.2.2 leaves several records at one name undefined; any that matches
  // will verify with some receivers, so say so rather than call it a match.
  std::string first_reason;
  for (const std::string& published : result.records) {
    std::string reason = dkim::record_mismatch(published, expected);
    if (reason.empty()) {
      std::cout << "match: " << record_name << " publishes the public key of " << options.key.string() << "\n";
      if (result.records.size() > 1) {
        std::cerr << "kurier: warning: " << record_name << " has " << result.records.size()
                  << " TXT records; verifiers may use any one of them\n";
      }
      return kExitOk;
    }
    if (first_reason.empty()) first_reason = reason;
  }
  std::cout << "mismatch: " << record_name << ": " << first_reason << "\n  published: " << result.records.front()
            << "\n  expected:  " << expected << "\npublish:\n"
            << publish << "\n";
  return kExitMismatch;
}

namespace {

CliCommand add_keygen_command(CLI::App& dkim) {
  struct State {
    DkimKeygenOptions options;
    std::string out;
  };
  auto [cmd, state] =
      add_subcommand_with_state<State>(dkim, "keygen", "write a private key (mode 0600) and print the DNS TXT record");
  cmd->add_option("--domain", state->options.domain, "signing domain (d=)")->required();
  cmd->add_option("--selector", state->options.selector, "selector (s=)")->required();
  cmd->add_option("--algorithm", state->options.algorithm, "rsa (2048 bits, default) or ed25519");
  cmd->add_option("--out", state->out, "private key file (default: SELECTOR.private)");
  return {cmd, [state] {
            state->options.out = optional_path(state->out);
            return dkim_keygen_command(state->options);
          }};
}

CliCommand add_check_key_command(CLI::App& dkim) {
  struct State : ConfigState<DkimCheckOptions> {
    std::string dns;
  };
  auto [cmd, state] = add_subcommand_with_state<State>(
      dkim, "check", "compare the published TXT record with a key: exit 0 match, 1 mismatch, 2 missing");
  cmd->add_option("--domain", state->options.domain, "signing domain (d=)")->required();
  cmd->add_option("--selector", state->options.selector, "selector (s=)")->required();
  cmd->add_option("--key", state->options.key, "private key file")->required();
  cmd->add_option("--dns", state->dns, "DNS server host:port (default: [dns] servers, else the system's)");
  return config_command(cmd, state, [](State& s) {
    if (!s.dns.empty()) s.options.dns = s.dns;
    return dkim_check_command(s.options);
  });
}

}  // namespace

CliCommand add_dkim_command(CLI::App& app) {
  auto* dkim = app.add_subcommand("dkim", "DKIM keys: keygen, check");
  dkim->require_subcommand(1);
  std::vector<CliCommand> commands = {add_keygen_command(*dkim), add_check_key_command(*dkim)};
  return {dkim, [commands] { return run_chosen(commands); }};
}

}  // namespace kurier::engine
