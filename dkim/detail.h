// Internals of dkim/ shared by its .cpp files and its tests; not part of the component's
// interface (that is dkim/signer.h). Includes OpenSSL, which signer.h must not.
#pragma once

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/signer.h"

namespace kurier::dkim::detail {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A private key parsed once; EVP_PKEY is safe to sign with from several threads at a
// time (OpenSSL 3 only reads it; RSA blinding is locked internally).
struct LoadedKey {
  KeySpec spec;
  Algorithm algorithm = Algorithm::rsa_sha256;
  PkeyPtr key;
};

// Reads and checks a PEM private key (signer.h lists the KeyErrors).
LoadedKey load_key(KeySpec spec);
// Throws std::invalid_argument unless `name` is a plausible DNS name (selectors may
// have dots too): labels of letters, digits, '-', '_', at most 253 bytes.
void check_dns_name(std::string_view name, const char* what);
// True if `key_domain` is `from_domain` or a parent of it (case-insensitive).
bool aligned(std::string_view key_domain, std::string_view from_domain);

std::string base64(const unsigned char* data, std::size_t size);

// The header fields DKIM signs when present (signer.h), lower case.
inline constexpr std::array<std::string_view, 10> kSignedHeaders = {
    "from",         "to",
    "subject",      "date",
    "message-id",   "mime-version",
    "content-type", "list-unsubscribe",
    "list-unsubscribe-post", "feedback-id"};

// One header field of a wire-form message: the text from its name up to, not
// including, the CRLF that ends its last line (folds inside are kept), un-stuffed.
struct HeaderField {
  std::string_view text;
  std::string_view name;  // as written, without trailing whitespace
};

struct ParsedMessage {
  std::vector<HeaderField> fields;
  std::string_view body;  // wire form (still dot-stuffed), after the empty line
};

// Splits a wire-form message (signer.h: CRLF, dot-stuffed) into header fields and
// body. Throws SignError when there is no empty line ending the header or a header
// line has no ':'.
ParsedMessage parse_message(std::string_view wire);

bool is_signed_header(std::string_view name);
// ASCII case-insensitive equality (header field names).
bool iequals(std::string_view a, std::string_view b);

// RFC 6376 §3.4.2 relaxed header canonicalisation of one field, appended to `out`
// without the trailing CRLF: name lower-cased, unfolded, runs of WSP as one SP, no WSP
// around the colon or at the end.
void append_relaxed_header(std::string_view field, std::string& out);

// RFC 6376 §3.4.4 relaxed body canonicalisation of a wire-form body, un-stuffing
// lines that start with '.' on the way: WSP runs become one SP, WSP at line ends and
// empty lines at the end of the body are dropped, a non-empty body ends in CRLF.
// The canonical text goes to `sink(std::string_view)` in chunks of up to kChunk bytes;
// nothing else is copied.
inline constexpr std::size_t kBodyChunk = 16 * 1024;  // a few pages: few digest calls, stack-friendly

template <typename Sink>
void relaxed_body(std::string_view body, Sink&& sink) {
  std::array<char, kBodyChunk> buffer;
  std::size_t used = 0;
  // One character at a time into the buffer: a branch per byte that is almost never
  // taken costs less than a copy call per word (profiled on 5 KB newsletters).
  auto emit = [&](char c) {
    if (used == buffer.size()) {
      sink(std::string_view(buffer.data(), used));
      used = 0;
    }
    buffer[used++] = c;
  };
  auto is_wsp = [](char c) { return c == ' ' || c == '\t'; };

  std::size_t empty_lines = 0;  // held back: dropped if nothing but empty lines follows
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find("\r\n", pos);
    std::string_view line;
    if (eol == std::string_view::npos) {
      line = body.substr(pos);
      pos = body.size();
    } else {
      line = body.substr(pos, eol - pos);
      pos = eol + 2;
    }
    // Un-stuff: in wire form a line that starts with '.' always starts with "..".
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    while (!line.empty() && is_wsp(line.back())) line.remove_suffix(1);
    if (line.empty()) {
      ++empty_lines;
      continue;
    }
    for (; empty_lines > 0; --empty_lines) {
      emit('\r');
      emit('\n');
    }
    bool space = false;  // a WSP run is pending; the line has no trailing WSP left
    for (char c : line) {
      if (is_wsp(c)) {
        space = true;
        continue;
      }
      if (space) emit(' ');
      space = false;
      emit(c);
    }
    emit('\r');
    emit('\n');
  }
  if (used > 0) sink(std::string_view(buffer.data(), used));
}

// Removes dot-stuffing from a wire-form message (tests, and the opendkim backend,
// which needs the stored form as one buffer).
std::string unstuff(std::string_view wire);

std::unique_ptr<Signer> make_native_signer(std::vector<LoadedKey> keys);
std::unique_ptr<Signer> make_opendkim_signer(std::vector<LoadedKey> keys);

}  // namespace kurier::dkim::detail
