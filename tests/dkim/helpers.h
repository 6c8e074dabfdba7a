// Test helpers for dkim/: keys made with the openssl CLI once per test binary, messages
// in SMTP wire form, DNS TXT records for dnsmasq, and the two external verifiers.
// For tests only; not thread-safe.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier::dkim::test {

namespace fs = std::filesystem;
using kurier::test::RunResult;

inline constexpr const char* kSignDomain = "sender.test";

// Runs the openssl CLI; fails the test (ADD_FAILURE) on a non-zero exit.
inline RunResult openssl(std::vector<std::string> args) {
  static const fs::path program = kurier::test::find_program("openssl");
  args.insert(args.begin(), program.string());
  RunResult r = kurier::test::run(args, std::chrono::seconds(120));
  if (r.exit_code != 0) ADD_FAILURE() << "openssl failed: " << r.err;
  return r;
}

// Keys generated once per build tree, in <build>/tests/dkim-test-keys: ctest runs every
// test in its own process, and two RSA key generations per process would cost more than
// most tests. A fresh directory is filled and then renamed into place, so processes
// running in parallel never see half-written keys (the loser of a race drops its own).
struct Keys {
  fs::path rsa_pkcs1;  // openssl genrsa -traditional 2048: "BEGIN RSA PRIVATE KEY"
  fs::path rsa_pkcs8;  // openssl genrsa 2048: "BEGIN PRIVATE KEY"
  fs::path ed25519;    // openssl genpkey -algorithm ed25519
  fs::path dir() const { return rsa_pkcs1.parent_path(); }
};

inline Keys keys_in(const fs::path& dir) {
  return Keys{dir / "rsa1.pem", dir / "rsa8.pem", dir / "ed.pem"};
}

inline const Keys& keys() {
  static const Keys k = [] {
    const fs::path dir = fs::path(KURIER_BINARY_DIR) / "tests" / "dkim-test-keys";
    if (fs::exists(keys_in(dir).ed25519)) return keys_in(dir);
    const fs::path staging = dir.string() + ".tmp-" + std::to_string(::getpid());
    fs::remove_all(staging);
    fs::create_directories(staging);
    const Keys made = keys_in(staging);
    openssl({"genrsa", "-traditional", "-out", made.rsa_pkcs1.string(), "2048"});
    openssl({"genrsa", "-out", made.rsa_pkcs8.string(), "2048"});
    openssl({"genpkey", "-algorithm", "ed25519", "-out", made.ed25519.string()});
    std::error_code ec;
    fs::rename(staging, dir, ec);  // fails if another process got there first: use theirs
    if (ec) fs::remove_all(staging);
    return keys_in(dir);
  }();
  return k;
}

// A message as the template renderer writes it: lines joined with CRLF, lines that
// start with '.' stuffed. `header` and `body` use "\n" between lines.
inline std::string wire(std::string_view header, std::string_view body) {
  std::string text = std::string(header) + "\n\n" + std::string(body);
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && c == '.') out += '.';
    if (c == '\n') {
      out += "\r\n";
      line_start = true;
    } else {
      out += c;
      line_start = false;
    }
  }
  return out;
}

// What a receiving MTA stores: the wire form without the stuffing.
inline std::string stored(std::string_view wire_message) {
  std::string out;
  bool line_start = true;
  for (std::size_t i = 0; i < wire_message.size(); ++i) {
    char c = wire_message[i];
    if (line_start && c == '.') {
      line_start = false;
      continue;
    }
    out += c;
    line_start = c == '\n';
  }
  return out;
}

// dnsmasq line publishing `value` at <selector>._domainkey.<domain>, split into the
// 255-byte character-strings a TXT record is made of.
inline std::string txt_record(const std::string& selector, const std::string& value,
                              const std::string& domain = kSignDomain) {
  std::string line = "txt-record=" + selector + "._domainkey." + domain;
  for (std::size_t i = 0; i < value.size(); i += 255) line += ",\"" + value.substr(i, 255) + "\"";
  return line;
}

// dnsmasq line publishing a zone-file record as keygen() / `kurier dkim keygen` print it
// (`NAME. IN TXT ( "..." "..." )`), string for string.
inline std::string dnsmasq_line(const std::string& record) {
  std::string line = "txt-record=" + record.substr(0, record.find(". IN TXT"));
  std::size_t pos = 0;
  while ((pos = record.find('"', pos)) != std::string::npos) {
    std::size_t end = record.find('"', pos + 1);
    if (end == std::string::npos) break;
    line += ",\"" + record.substr(pos + 1, end - pos - 1) + "\"";
    pos = end + 1;
  }
  return line;
}

struct Verdict {
  int exit_code = -1;
  std::string output;
};

// Runs tests/dkim/verify_pydkim.py or verify_maildkim.pl on `message` (stored form).
inline Verdict verify(const std::string& script, const std::string& message, std::uint16_t dns_port) {
  static kurier::test::TempDir dir;
  static int counter = 0;
  fs::path file = dir.path() / ("message" + std::to_string(++counter) + ".eml");
  kurier::test::write_file(file, message);
  // Debian's interpreters: the modules are Debian packages (python3-dkim,
  // libmail-dkim-perl); a python3 earlier on PATH may lack them.
  const std::string interpreter = script.ends_with(".py") ? "/usr/bin/python3" : "/usr/bin/perl";
  RunResult r = kurier::test::run(
      {interpreter, kurier::test::source_path("tests/dkim/" + script).string(), file.string(), std::to_string(dns_port)},
      std::chrono::seconds(60));
  return Verdict{r.exit_code, r.out + r.err};
}

inline const std::vector<std::string>& verifiers() {
  static const std::vector<std::string> scripts = {"verify_pydkim.py", "verify_maildkim.pl"};
  return scripts;
}

// Number of lines of `text` that start with `prefix`.
inline int count_lines(const std::string& text, std::string_view prefix) {
  int n = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    if (std::string_view(text).substr(pos, eol - pos).starts_with(prefix)) ++n;
    pos = eol + 1;
  }
  return n;
}

}  // namespace kurier::dkim::test
