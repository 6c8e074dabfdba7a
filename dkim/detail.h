// Internals of dkim/ shared by its .cpp files, its tests and bench/dkim_bench.cpp; not
// part of the component's interface (that is dkim/signer.h). Includes OpenSSL, which
// signer.h must not.
#pragma once

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
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

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const noexcept { EVP_PKEY_CTX_free(ctx); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

// The largest signature a DigestSigner writes: RSA 8192.
inline constexpr std::size_t kMaxSignatureSize = 1024;

// The signing step of one key, its OpenSSL context set up once and reused: setting one
// up (a provider fetch of the algorithm, a key context, RSA padding and digest) costs
// about a third of an Ed25519 signature; `openssl speed` reuses its contexts the same
// way. One signature at a time: each thread of work needs its own. `key` must outlive it.
class DigestSigner {
 public:
  explicit DigestSigner(const LoadedKey& key);

  // RSASSA-PKCS1-v1_5 (RFC 6376 §3.3.1) or PureEdDSA Ed25519 (RFC 8463 §3: Ed25519
  // signs the SHA-256 digest, not the hash input) of `digest` into `sig`, which holds
  // kMaxSignatureSize bytes. Returns the signature's size; throws SignError.
  std::size_t sign(const unsigned char* digest, std::size_t digest_size, unsigned char* sig);

 private:
  Algorithm algorithm_;
  PkeyCtxPtr rsa_;
  MdCtxPtr ed25519_;
};

// Reads and checks a PEM private key (signer.h lists the KeyErrors).
LoadedKey load_key(KeySpec spec);
// Throws std::invalid_argument unless `name` is a plausible DNS name (selectors may
// have dots too): labels of letters, digits, '-', '_', at most 253 bytes.
void check_dns_name(std::string_view name, const char* what);
// True if `key_domain` is `from_domain` or a parent of it (case-insensitive).
bool aligned(std::string_view key_domain, std::string_view from_domain);

std::string base64(const unsigned char* data, std::size_t size);

// The oldest queued OpenSSL error as text, for messages; clears the queue so the next
// failure does not report a stale error.
std::string openssl_error();

// public_record() (signer.h) of a key already in memory; `key_file` names it in a KeyError.
std::string public_record(EVP_PKEY* key, Algorithm algorithm, const std::filesystem::path& key_file);

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
// The same into `out`, reusing the capacity of its field list (the signer keeps one per
// thread of work).
void parse_message(std::string_view wire, ParsedMessage& out);

bool is_signed_header(std::string_view name);

// RFC 6376 §3.4.2 relaxed header canonicalisation of one field, appended to `out`
// without the trailing CRLF: name lower-cased, unfolded, runs of WSP as one SP, no WSP
// around the colon or at the end.
void append_relaxed_header(std::string_view field, std::string& out);

// RFC 6376 §3.4.4 relaxed body canonicalisation of a wire-form body, un-stuffing
// lines that start with '.' on the way: WSP runs become one SP, WSP at line ends and
// empty lines at the end of the body are dropped, a non-empty body ends in CRLF.
// The canonical text goes to `sink(context, piece)` in order, as pieces that are spans
// of `body` itself (a newsletter needs a handful: one per line that has something to
// drop) and short literals (" ", "\r\n"); nothing is copied, so a digest can take the
// pieces straight from the message.
using BodySink = void (*)(void* context, std::string_view piece);
void relaxed_body(std::string_view body, BodySink sink, void* context);

// The same with any callable `sink(std::string_view)`.
template <typename Sink>
void relaxed_body(std::string_view body, Sink&& sink) {
  using Callable = std::remove_reference_t<Sink>;
  relaxed_body(
      body, [](void* context, std::string_view piece) { (*static_cast<Callable*>(context))(piece); },
      const_cast<void*>(static_cast<const void*>(std::addressof(sink))));
}

// Removes dot-stuffing from a wire-form message (tests, and the opendkim backend,
// which needs the stored form as one buffer).
std::string unstuff(std::string_view wire);

std::unique_ptr<Signer> make_native_signer(std::vector<LoadedKey> keys);
std::unique_ptr<Signer> make_opendkim_signer(std::vector<LoadedKey> keys);

}  // namespace kurier::dkim::detail
