// The native DKIM signer: relaxed/relaxed canonicalisation and SHA-256 here, RSA and
// Ed25519 signatures by OpenSSL with keys parsed once. Runs on the caller's thread
// (the engine's signing pool), concurrently. Fails with SignError (see signer.h).
//
// Why not libopendkim for every message: dkim_sign() takes the key as a PEM string and
// every handle parses it again (dkim_privkey_load -> PEM_read_bio_PrivateKey). With
// OpenSSL 3.0 (Debian 12) that decoder costs more than the RSA-2048 signature itself
// and ten times an Ed25519 one: measured on a 5 KB message (bench/results/dkim.md),
// libopendkim reaches ~25% of `openssl speed` for rsa2048 and ~6% for ed25519, this
// code 92-104% and 81-84%; the API offers no way to hand it a parsed key. libopendkim
// stays as Backend::opendkim, the reference the tests hold this code to byte for byte.
//
// Where an Ed25519 signature of a 5 KB message goes (perf, kurier-dkim-bench): 92% in
// libcrypto (the signature alone is ~85%, SHA-256 of body and header the rest), ~7%
// parsing, canonicalisation and building the field. Hence: the body reaches the digest
// in spans of the message itself (relaxed_body), and contexts and buffers are set up
// once per thread of work and reused (Workspace).
#include <openssl/rsa.h>

#include <charconv>
#include <ctime>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>

#include "common/text.h"
#include "dkim/detail.h"

namespace kurier::dkim {

namespace detail {

namespace {

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; h= may exceed it (a tag value
// is only folded where FWS is allowed without changing the signed text).
constexpr std::size_t kFoldColumn = 78;
constexpr std::size_t kSha256Size = 32;

struct MdFree {
  void operator()(EVP_MD* md) const noexcept { EVP_MD_free(md); }
};

[[noreturn]] void crypto_failure(const char* what) {
  throw SignError(std::string("DKIM: ") + what + " failed: " + detail::openssl_error());
}

// Base64 of `size` bytes into `out` (room for 4 * ceil(size / 3) + 1 bytes).
std::string_view base64_into(const unsigned char* data, std::size_t size, char* out) {
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out), data, static_cast<int>(size));
  return {out, static_cast<std::size_t>(n)};
}

// Appends tags to a header field, folding before a tag that would cross kFoldColumn,
// and writes the field's relaxed canonical form (RFC 6376 §3.4.2) alongside: the name in
// lower case, no space after the colon, one SP between tags wherever the field has an SP
// or a fold. Tag values have no WSP of their own (base64, DNS names, field names), so
// that is the whole of the canonicalisation; the b= value, written folded by value(),
// is not part of the canonical form (RFC 6376 §3.7 hashes the field with b= empty).
class FieldWriter {
 public:
  FieldWriter(std::string& out, std::string& canonical) : out_(out), canonical_(canonical), line_start_(out.size()) {
    out_ += "DKIM-Signature:";
    canonical_ += "dkim-signature:";
  }
  // One tag, written from its parts (e.g. "d=", domain, ";").
  void tag(std::initializer_list<std::string_view> parts) {
    std::size_t size = 0;
    for (std::string_view part : parts) size += part.size();
    if (column() + 1 + size > kFoldColumn) {
      fold();
    } else {
      out_ += ' ';
    }
    if (!first_tag_) canonical_ += ' ';
    first_tag_ = false;
    for (std::string_view part : parts) {
      out_ += part;
      canonical_ += part;
    }
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
  std::string& canonical_;
  std::size_t line_start_;
  bool first_tag_ = true;
};

// What one sign() call needs besides the keys, kept between calls: contexts set up once
// and buffers that keep their capacity, so that signing a message allocates little more
// than its result.
struct Workspace {
  MdCtxPtr sha256{EVP_MD_CTX_new()};  // body and header digests
  std::vector<DigestSigner> signers;  // one per key, in key order
  ParsedMessage message;
  std::vector<bool> hashed;  // per header field: already in the hash input
  std::string names;         // the h= value
  std::string headers;       // canonical signed fields, each with CRLF: the start of every hash input
  std::string own_field;     // the canonical DKIM-Signature field being written: the end of it

  explicit Workspace(const std::vector<LoadedKey>& keys) {
    if (!sha256) crypto_failure("EVP_MD_CTX_new");
    signers.reserve(keys.size());
    for (const LoadedKey& key : keys) signers.emplace_back(key);
  }
};

// Workspaces of one signer. A workspace serves one sign() at a time, so each call takes
// one and puts it back; the pool grows to the number of threads that sign at once.
class WorkspacePool {
 public:
  explicit WorkspacePool(const std::vector<LoadedKey>& keys) : keys_(keys) {}

  std::unique_ptr<Workspace> acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<Workspace> workspace = std::move(idle_.back());
        idle_.pop_back();
        return workspace;
      }
    }
    return std::make_unique<Workspace>(keys_);
  }

  // Only after a successful sign(): a workspace whose call failed half-way is dropped.
  void release(std::unique_ptr<Workspace> workspace) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(workspace));
  }

 private:
  const std::vector<LoadedKey>& keys_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace>> idle_;
};

class NativeSigner final : public Signer {
 public:
  explicit NativeSigner(std::vector<LoadedKey> keys) : keys_(std::move(keys)), pool_(keys_) {
    // Fetched once: an implicit fetch per EVP_DigestInit costs a provider lookup.
    sha256_.reset(EVP_MD_fetch(nullptr, "SHA2-256", nullptr));
    if (!sha256_) crypto_failure("EVP_MD_fetch(SHA2-256)");
  }

  using Signer::sign;
  std::string sign(std::string_view wire_message, std::int64_t signing_time) const override {
    std::unique_ptr<Workspace> ws = pool_.acquire();
    parse_message(wire_message, ws->message);
    const std::vector<HeaderField>& fields = ws->message.fields;

    // h= lists the signed fields in message order. RFC 6376 §5.4.2: a verifier takes
    // the instances of a name repeated in h= from the bottom up, so hash them so.
    ws->names.clear();
    ws->headers.clear();
    ws->hashed.assign(fields.size(), false);
    bool has_from = false;
    for (const HeaderField& field : fields) {
      if (!is_signed_header(field.name)) continue;
      has_from = has_from || text::iequals(field.name, "from");
      if (!ws->names.empty()) ws->names += ':';
      ws->names += field.name;
      for (std::size_t j = fields.size(); j-- > 0;) {
        if (!ws->hashed[j] && text::iequals(fields[j].name, field.name)) {
          ws->hashed[j] = true;
          append_relaxed_header(fields[j].text, ws->headers);
          ws->headers += "\r\n";
          break;
        }
      }
    }
    if (!has_from) throw SignError("DKIM: message has no From field");

    char body_hash[64];
    const std::string_view bh = hash_body(*ws, body_hash);
    char time_text[24];
    const char* time_end = std::to_chars(time_text, time_text + sizeof time_text, signing_time).ptr;
    const std::string_view t(time_text, static_cast<std::size_t>(time_end - time_text));

    std::string out;
    out.reserve(keys_.size() * 640);
    for (std::size_t k = 0; k < keys_.size(); ++k) {
      const LoadedKey& key = keys_[k];
      ws->own_field.clear();
      FieldWriter writer(out, ws->own_field);
      writer.tag({"v=1;"});
      writer.tag({key.algorithm == Algorithm::rsa_sha256 ? "a=rsa-sha256;" : "a=ed25519-sha256;"});
      writer.tag({"c=relaxed/relaxed;"});
      writer.tag({"d=", key.spec.domain, ";"});
      writer.tag({"s=", key.spec.selector, ";"});
      writer.tag({"t=", t, ";"});
      writer.tag({"bh=", bh, ";"});
      writer.tag({"h=", ws->names, ";"});
      writer.tag({"b="});
      // The hash input ends with this field as it stands, b= empty, canonicalised and
      // without CRLF (RFC 6376 §3.7).
      unsigned char digest[kSha256Size];
      header_hash(*ws, digest);
      unsigned char sig[kMaxSignatureSize];
      const std::size_t sig_size = ws->signers[k].sign(digest, sizeof digest, sig);
      char sig_base64[4 * ((kMaxSignatureSize + 2) / 3) + 1];
      writer.value(base64_into(sig, sig_size, sig_base64));
      out += "\r\n";
    }
    pool_.release(std::move(ws));
    return out;
  }

 private:
  // Base64 of the SHA-256 of the canonical body, into `out` (64 bytes). The body goes
  // to the digest in pieces of the message itself (relaxed_body), never copied.
  std::string_view hash_body(Workspace& ws, char* out) const {
    EVP_MD_CTX* ctx = ws.sha256.get();
    if (EVP_DigestInit_ex(ctx, sha256_.get(), nullptr) != 1) crypto_failure("SHA-256 init");
    bool ok = true;
    relaxed_body(ws.message.body, [&](std::string_view piece) {
      ok = ok && EVP_DigestUpdate(ctx, piece.data(), piece.size()) == 1;
    });
    unsigned char digest[kSha256Size];
    unsigned int size = 0;
    if (!ok || EVP_DigestFinal_ex(ctx, digest, &size) != 1) crypto_failure("SHA-256 of the body");
    return base64_into(digest, size, out);
  }

  // The SHA-256 of the header hash input, the signed fields and then the DKIM-Signature
  // field: what both algorithms sign (RFC 8463 §3).
  void header_hash(Workspace& ws, unsigned char* digest) const {
    EVP_MD_CTX* ctx = ws.sha256.get();
    unsigned int size = 0;
    if (EVP_DigestInit_ex(ctx, sha256_.get(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx, ws.headers.data(), ws.headers.size()) != 1 ||
        EVP_DigestUpdate(ctx, ws.own_field.data(), ws.own_field.size()) != 1 || EVP_DigestFinal_ex(ctx, digest, &size) != 1)
      crypto_failure("SHA-256 of the header");
  }

  std::vector<LoadedKey> keys_;
  std::unique_ptr<EVP_MD, MdFree> sha256_;
  mutable WorkspacePool pool_;
};

}  // namespace

DigestSigner::DigestSigner(const LoadedKey& key) : algorithm_(key.algorithm) {
  if (algorithm_ == Algorithm::rsa_sha256) {
    rsa_.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, key.key.get(), nullptr));
    if (!rsa_ || EVP_PKEY_sign_init(rsa_.get()) != 1 || EVP_PKEY_CTX_set_rsa_padding(rsa_.get(), RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(rsa_.get(), EVP_sha256()) != 1)
      crypto_failure("RSA signature set-up");
  } else {
    ed25519_.reset(EVP_MD_CTX_new());
    if (!ed25519_ ||
        EVP_DigestSignInit_ex(ed25519_.get(), nullptr, nullptr, nullptr, nullptr, key.key.get(), nullptr) != 1)
      crypto_failure("Ed25519 signature set-up");
  }
}

std::size_t DigestSigner::sign(const unsigned char* digest, std::size_t digest_size, unsigned char* sig) {
  std::size_t sig_size = kMaxSignatureSize;
  if (algorithm_ == Algorithm::rsa_sha256) {
    if (EVP_PKEY_sign(rsa_.get(), sig, &sig_size, digest, digest_size) != 1) crypto_failure("RSA signature");
  } else {
    if (EVP_DigestSign(ed25519_.get(), sig, &sig_size, digest, digest_size) != 1) crypto_failure("Ed25519 signature");
  }
  return sig_size;
}

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
      if (text::iequals(other.spec.domain, spec.domain) && text::iequals(other.spec.selector, spec.selector))
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
