// The native DKIM signer: relaxed/relaxed canonicalisation and SHA-256 here, RSA and
// Ed25519 signatures by OpenSSL with keys parsed once. Runs on the caller's thread
// (the engine's signing pool), concurrently. Fails with SignError (see signer.h).
//
// Why not libopendkim for every message: dkim_sign() takes the key as a PEM string and
// every handle parses it again (dkim_privkey_load -> PEM_read_bio_PrivateKey). With
// OpenSSL 3.0 (Debian 12) that decoder costs more than the RSA-2048 signature itself
// and ten times an Ed25519 one: measured on a 5 KB message (bench/results/dkim.md),
// libopendkim reaches ~26% of `openssl speed` for rsa2048 and ~6% for ed25519, this
// code ~98% and 59-77%; the API offers no way to hand it a parsed key. libopendkim
// stays as Backend::opendkim, the reference the tests hold this code to byte for byte.
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>

#include "dkim/detail.h"

namespace kurier::dkim {

namespace detail {

namespace {

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; h= may exceed it (a tag value
// is only folded where FWS is allowed without changing the signed text).
constexpr std::size_t kFoldColumn = 78;
constexpr std::size_t kSha256Size = 32;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const noexcept { EVP_PKEY_CTX_free(ctx); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
struct MdFree {
  void operator()(EVP_MD* md) const noexcept { EVP_MD_free(md); }
};

[[noreturn]] void crypto_failure(const char* what) {
  unsigned long code = ERR_peek_last_error();
  char buf[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, buf, sizeof buf);
  ERR_clear_error();
  throw SignError(std::string("DKIM: ") + what + " failed: " + buf);
}

// Appends tags to a header field, folding before a tag that would cross kFoldColumn.
class FieldWriter {
 public:
  explicit FieldWriter(std::string& out) : out_(out), line_start_(out.size()) {
    out_ += "DKIM-Signature:";
  }
  void tag(std::string_view text) {
    if (column() + 1 + text.size() > kFoldColumn) {
      fold();
    } else {
      out_ += ' ';
    }
    out_ += text;
  }
  // Appends a base64 value, folded inside (FWS is allowed anywhere in b= and bh=).
  void value(std::string_view text) {
    while (!text.empty()) {
      if (column() >= kFoldColumn) fold();
      std::size_t n = std::min(text.size(), kFoldColumn - column());
      out_ += text.substr(0, n);
      text.remove_prefix(n);
    }
  }
  std::size_t column() const { return out_.size() - line_start_; }
  void fold() {
    out_ += "\r\n\t";
    line_start_ = out_.size() - 1;
  }

 private:
  std::string& out_;
  std::size_t line_start_;
};

// Signing contexts of one key, initialised once and reused: setting one up (a provider
// fetch of the algorithm, a new key context, RSA padding and digest) costs about a
// third of an Ed25519 signature. A context serves one signature at a time, so each
// sign() takes one from the pool and puts it back; the pool grows to the number of
// threads that sign at once. openssl speed reuses its contexts the same way.
class ContextPool {
 public:
  ContextPool(const LoadedKey& key, const EVP_MD* sha256) : key_(key), sha256_(sha256) {}

  // RSASSA-PKCS1-v1_5 (RFC 6376 §3.3.1) or PureEdDSA Ed25519 (RFC 8463 §3) of `digest`.
  std::string sign(const unsigned char* digest, std::size_t digest_size) {
    Context context = acquire();
    unsigned char sig[1024];  // RSA 8192 at most: 1024 bytes
    std::size_t sig_size = sizeof sig;
    const bool ok = key_.algorithm == Algorithm::rsa_sha256
                        ? EVP_PKEY_sign(context.rsa.get(), sig, &sig_size, digest, digest_size) == 1
                        : EVP_DigestSign(context.ed25519.get(), sig, &sig_size, digest, digest_size) == 1;
    if (!ok) crypto_failure(key_.algorithm == Algorithm::rsa_sha256 ? "RSA signature" : "Ed25519 signature");
    release(std::move(context));
    return base64(sig, sig_size);
  }

 private:
  struct Context {
    PkeyCtxPtr rsa;
    MdCtxPtr ed25519;
  };

  Context acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        Context context = std::move(idle_.back());
        idle_.pop_back();
        return context;
      }
    }
    Context context;
    if (key_.algorithm == Algorithm::rsa_sha256) {
      context.rsa.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.key.get(), nullptr));
      if (!context.rsa || EVP_PKEY_sign_init(context.rsa.get()) != 1 ||
          EVP_PKEY_CTX_set_rsa_padding(context.rsa.get(), RSA_PKCS1_PADDING) != 1 ||
          EVP_PKEY_CTX_set_signature_md(context.rsa.get(), sha256_) != 1)
        crypto_failure("RSA signature set-up");
    } else {
      context.ed25519.reset(EVP_MD_CTX_new());
      if (!context.ed25519 ||
          EVP_DigestSignInit_ex(context.ed25519.get(), nullptr, nullptr, nullptr, nullptr, key_.key.get(), nullptr) != 1)
        crypto_failure("Ed25519 signature set-up");
    }
    return context;
  }

  void release(Context context) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(context));
  }

  const LoadedKey& key_;
  const EVP_MD* sha256_;
  std::mutex mutex_;
  std::vector<Context> idle_;
};

class NativeSigner final : public Signer {
 public:
  explicit NativeSigner(std::vector<LoadedKey> keys) : keys_(std::move(keys)) {
    // Fetched once: an implicit fetch per EVP_DigestInit costs a provider lookup.
    sha256_.reset(EVP_MD_fetch(nullptr, "SHA2-256", nullptr));
    if (!sha256_) crypto_failure("EVP_MD_fetch(SHA2-256)");
    for (const LoadedKey& key : keys_) pools_.push_back(std::make_unique<ContextPool>(key, sha256_.get()));
  }

  using Signer::sign;
  std::string sign(std::string_view wire_message, std::int64_t signing_time) const override {
    ParsedMessage message = parse_message(wire_message);

    // h= lists the signed fields in message order. RFC 6376 §5.4.2: a verifier takes
    // the instances of a name repeated in h= from the bottom up, so hash them so.
    std::string names;
    std::string headers;  // canonical signed fields, each with CRLF: the start of every hash input
    headers.reserve(1024);
    std::vector<bool> used(message.fields.size(), false);
    bool has_from = false;
    for (const HeaderField& field : message.fields) {
      if (!is_signed_header(field.name)) continue;
      has_from = has_from || iequals(field.name, "from");
      if (!names.empty()) names += ':';
      names += field.name;
      for (std::size_t j = message.fields.size(); j-- > 0;) {
        if (!used[j] && iequals(message.fields[j].name, field.name)) {
          used[j] = true;
          append_relaxed_header(message.fields[j].text, headers);
          headers += "\r\n";
          break;
        }
      }
    }
    if (!has_from) throw SignError("DKIM: message has no From field");

    const std::string body_hash = hash_body(message.body);
    const std::string time = std::to_string(signing_time);

    std::string out;
    out.reserve(keys_.size() * 640);
    std::string input;
    for (std::size_t k = 0; k < keys_.size(); ++k) {
      const LoadedKey& key = keys_[k];
      const std::size_t start = out.size();
      FieldWriter writer(out);
      writer.tag("v=1;");
      writer.tag(key.algorithm == Algorithm::rsa_sha256 ? "a=rsa-sha256;" : "a=ed25519-sha256;");
      writer.tag("c=relaxed/relaxed;");
      writer.tag("d=" + key.spec.domain + ";");
      writer.tag("s=" + key.spec.selector + ";");
      writer.tag("t=" + time + ";");
      writer.tag("bh=" + body_hash + ";");
      writer.tag("h=" + names + ";");
      writer.tag("b=");
      // The hash input ends with this field as it stands, b= empty, canonicalised and
      // without CRLF (RFC 6376 §3.7).
      input.assign(headers);
      append_relaxed_header(std::string_view(out).substr(start), input);
      writer.value(signature(*pools_[k], input));
      out += "\r\n";
    }
    return out;
  }

 private:
  std::string hash_body(std::string_view body) const {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), sha256_.get(), nullptr) != 1) crypto_failure("SHA-256 init");
    bool ok = true;
    relaxed_body(body, [&](std::string_view chunk) {
      ok = ok && EVP_DigestUpdate(ctx.get(), chunk.data(), chunk.size()) == 1;
    });
    unsigned char digest[kSha256Size];
    unsigned int size = 0;
    if (!ok || EVP_DigestFinal_ex(ctx.get(), digest, &size) != 1) crypto_failure("SHA-256 of the body");
    return base64(digest, size);
  }

  // The signature of the header hash input: both algorithms sign its SHA-256 digest
  // (RFC 8463 §3: Ed25519 signs the digest, not the input itself).
  std::string signature(ContextPool& pool, std::string_view input) const {
    unsigned char digest[kSha256Size];
    unsigned int digest_size = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &digest_size, sha256_.get(), nullptr) != 1)
      crypto_failure("SHA-256 of the header");
    return pool.sign(digest, digest_size);
  }

  std::vector<LoadedKey> keys_;
  std::unique_ptr<EVP_MD, MdFree> sha256_;
  std::vector<std::unique_ptr<ContextPool>> pools_;  // one per key, in keys_ order
};

}  // namespace

std::unique_ptr<Signer> make_native_signer(std::vector<LoadedKey> keys) {
  return std::make_unique<NativeSigner>(std::move(keys));
}

}  // namespace detail

std::unique_ptr<Signer> Signer::create(std::vector<KeySpec> keys, std::string_view from_domain, Backend backend) {
  if (keys.empty()) throw std::invalid_argument("DKIM: no signing keys");
  detail::check_dns_name(from_domain, "From domain");
  std::vector<detail::LoadedKey> loaded;
  loaded.reserve(keys.size());
  for (KeySpec& spec : keys) {
    detail::check_dns_name(spec.domain, "domain");
    detail::check_dns_name(spec.selector, "selector");
    for (const detail::LoadedKey& other : loaded) {
      if (detail::iequals(other.spec.domain, spec.domain) && detail::iequals(other.spec.selector, spec.selector))
        throw std::invalid_argument("DKIM: two keys for " + spec.selector + "._domainkey." + spec.domain);
    }
    if (!detail::aligned(spec.domain, from_domain)) {
      throw KeyError(spec.key_file, "signing domain '" + spec.domain + "' is neither the From domain '" +
                                        std::string(from_domain) + "' nor a parent of it (DMARC alignment)");
    }
    loaded.push_back(detail::load_key(std::move(spec)));
  }
  return backend == Backend::native ? detail::make_native_signer(std::move(loaded))
                                    : detail::make_opendkim_signer(std::move(loaded));
}

std::string Signer::sign(std::string_view wire_message) const {
  return sign(wire_message, static_cast<std::int64_t>(std::time(nullptr)));
}

}  // namespace kurier::dkim
