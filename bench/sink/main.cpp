// kurier-sink command line: parses the options and the script, then runs the server.
// Main thread. Exit status 0 after SIGTERM/SIGINT, 2 for bad options or a bad script,
// 1 when the sink cannot start (address in use, unwritable store directory, TLS).
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/sink/script.h"
#include "bench/sink/server.h"
#include "common/log.h"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

}  // namespace

int main(int argc, char** argv) {
  using kurier::sink::ServerOptions;
  CLI::App app{"kurier-sink: the scriptable test MX sink"};
  ServerOptions options;
  std::string script_path;
  std::string level = "warn";
  app.add_option("--listen", options.listen, "ADDR:PORT to listen on; repeatable; IPv6 as [::1]:2525")
      ->required();
  app.add_option("--script", script_path, "TOML script: greeting, limits, reply rules");
  app.add_option("--store", options.store_dir, "store accepted messages as DIR/<listen-ip>/<unique>.eml");
  app.add_option("--stats", options.stats_file, "JSON counters, rewritten every 200 ms and on exit");
  app.add_flag("--tls", options.tls, "offer STARTTLS with an ephemeral self-signed certificate");
  app.add_option("--tls-cert", options.tls_cert, "PEM certificate chain for STARTTLS (implies --tls)");
  app.add_option("--tls-key", options.tls_key, "PEM private key for --tls-cert (default: the same file)");
  app.add_option("--threads", options.threads, "worker threads (io_contexts)")->check(CLI::Range(1U, 256U));
  app.add_option("--log-level", level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : kExitUsage;
  }
  kurier::log::set_level(level);

  try {
    if (!script_path.empty()) options.script = kurier::sink::load_script(script_path);
    return kurier::sink::run_server(std::move(options));
  } catch (const kurier::sink::ScriptError& e) {
    std::fprintf(stderr, "kurier-sink: %s\n", e.what());
    return kExitUsage;
  } catch (const kurier::sink::UsageError& e) {
    std::fprintf(stderr, "kurier-sink: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kurier-sink: %s\n", e.what());
    return kExitFailure;
  }
}
