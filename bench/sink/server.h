// kurier-sink's server: listeners, worker threads, the stats file and shutdown.
//
// Contract: run_server() binds every listen address, writes the stats file once (all
// zeros) if one is configured, prints "kurier-sink ready" on stdout, then serves until
// SIGTERM or SIGINT. On the signal it stops accepting, closes open connections, writes
// the final stats and returns 0, within about a second. Called once, from main().
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/sink/script.h"

namespace kurier::sink {

// Bad command-line input (exit status 2), as opposed to a runtime failure such as an
// address already in use (std::runtime_error, exit status 1).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ServerOptions {
  std::vector<std::string> listen;   // "ADDR:PORT" or "[IPv6]:PORT"; at least one
  Script script;
  std::filesystem::path store_dir;   // empty: messages are counted, not stored
  std::filesystem::path stats_file;  // empty: no stats file
  bool tls = false;                  // offer STARTTLS (also when script.tls)
  // PEM certificate chain and key for STARTTLS (tests of certificate checks, MTA-STS);
  // empty: an ephemeral self-signed certificate. Setting them implies `tls`.
  std::filesystem::path tls_cert, tls_key;
  unsigned threads = 1;              // worker io_contexts, one thread each
};

// Throws UsageError for a malformed listen address, std::runtime_error for a
// start-up failure (bind, store directory, TLS). Returns the exit status.
int run_server(ServerOptions options);

}  // namespace kurier::sink
