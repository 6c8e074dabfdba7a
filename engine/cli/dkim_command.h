// `kurier dkim keygen` and `kurier dkim check`: make a DKIM key and the DNS record to
// publish, and check that the published record belongs to a key (dkim/signer.h).
// Main thread. Each returns the exit status and prints to stdout/stderr.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace kurier::engine {

struct DkimKeygenOptions {
  std::string domain;
  std::string selector;
  std::string algorithm = "rsa";  // "rsa" (2048 bits) or "ed25519"
  // Default: SELECTOR.private in the current directory (opendkim-genkey's name).
  std::optional<std::filesystem::path> out;
};

// Writes the private key (PKCS#8 PEM, mode 0600; an existing file is never replaced)
// and prints the TXT record to publish on stdout, the key's path on stderr.
// 0 done; 2 bad input (malformed domain or selector, unknown algorithm, the file
// exists); 1 the key could not be written.
int dkim_keygen_command(const DkimKeygenOptions& options);

struct DkimCheckOptions {
  std::string domain;
  std::string selector;
  std::filesystem::path key;  // the private key the record should publish
  // "host:port" of the DNS server to ask; default: [dns] servers of the config, else
  // the system's resolvers.
  std::optional<std::string> dns;
  std::optional<std::filesystem::path> config;
};

// Looks up SELECTOR._domainkey.DOMAIN TXT and compares it with the key's public half.
// Prints one line "match: ...", "mismatch: ..." or "missing: ..." (the last two
// followed by the record to publish). Exit status: 0 match; 1 mismatch (or the lookup
// failed: SERVFAIL, timeout — the message says which); 2 missing (NXDOMAIN, no DKIM
// record), or bad input (unusable key file, malformed domain or selector).
int dkim_check_command(const DkimCheckOptions& options);

}  // namespace kurier::engine
