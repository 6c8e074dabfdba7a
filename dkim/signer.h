// DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463).
//
// Contract: a Signer is built once per campaign from its keys (create()) and then
// signs each personalised message in SMTP wire form. sign() returns the complete
// DKIM-Signature header field(s), to be prepended to the message unchanged:
//   - canonicalisation relaxed/relaxed; the whole body (no l= tag); t= is the signing
//     time; no x= (expiry), no i= (the identity defaults to @d);
//   - signed header fields: every instance of From, To, Subject, Date, Message-ID,
//     MIME-Version, Content-Type, List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID
//     that the message has, listed in h= in message order; From is mandatory;
//   - one signature per key, in the order of the keys (an RSA key and an Ed25519 key
//     for the same domain give the dual signature RFC 8463 recommends);
//   - each field folded at 78 columns where the value allows (tag boundaries, the b=
//     and bh= values), lines joined by CRLF + TAB, ending in CRLF.
//
// Input: the message exactly as written to the DATA stream by the template renderer
// (engine/intake/template.h): CRLF line endings, lines beginning with '.' stuffed to "..",
// without the terminating ".\r\n". The signature covers the message as the receiver
// stores it, i.e. after un-stuffing; sign() un-stuffs while hashing and copies
// nothing but the header fields it signs.
//
// Keys: PEM files as `openssl genrsa` (PKCS#1 "RSA PRIVATE KEY" with -traditional,
// else PKCS#8) or `openssl genpkey -algorithm ed25519` (PKCS#8) write them; the
// algorithm follows from the key type. Keys are parsed once, in create(); sign() uses
// the parsed keys and never touches the files again.
//
// Errors: every key problem is a KeyError from create() (missing, unreadable, not a
// PEM private key, a certificate, encrypted, unsupported type, RSA shorter than
// kMinRsaBits, signing domain not aligned with the From domain) so that a campaign is
// refused when submitted, never half-way through sending. sign() throws SignError for
// a message it cannot sign (no From field, no header/body separator): callers render
// messages themselves, so that is a bug, not a runtime condition.
//
// Threading: a Signer is immutable after create(); sign() is const and may run
// concurrently on any number of threads (the delivery engine signs on a thread pool,
// RSA costs ~0.3 ms per signature). Ownership: create() returns the only owner.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::dkim {

enum class Algorithm { rsa_sha256, ed25519_sha256 };

// RSA keys shorter than this are refused: RFC 8301 §3.2 makes verifiers reject them.
inline constexpr int kMinRsaBits = 1024;
// Key size written by keygen() for RSA (RFC 8301 recommends at least 2048).
inline constexpr int kKeygenRsaBits = 2048;

struct KeySpec {
  std::string domain;              // d= tag: the signing domain, e.g. "example.com"
  std::string selector;            // s= tag: the key is published at <selector>._domainkey.<domain>
  std::filesystem::path key_file;  // PEM private key
};

// A key that cannot be used; what() names the file and the problem, e.g.
// "DKIM key keys/k1.private: RSA key has 512 bits; at least 1024 are required".
class KeyError : public std::runtime_error {
 public:
  KeyError(std::filesystem::path file, const std::string& problem);
  const std::filesystem::path& file() const noexcept { return file_; }

 private:
  std::filesystem::path file_;
};

// A message that cannot be signed (see the contract above), or a failure inside the
// crypto library.
class SignError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Which code computes the signatures. Both produce the same bytes for the same
// message, keys and time (tests check this).
enum class Backend {
  // Canonicalisation and hashing here, signatures by OpenSSL with the keys parsed once
  // and signing contexts reused. The default: measured 4-14 times faster (dkim.md).
  native,
  // libopendkim end to end: one DKIM handle per signature per message. Debian 12's
  // libopendkim 2.11 signs ed25519-sha256 as well as rsa-sha256. It takes the key as a
  // PEM string and parses it again for every handle, which with OpenSSL 3.0 costs more
  // than an RSA signature (bench/results/dkim.md); sign() calls are serialised. The
  // reference the native backend is held to, byte for byte.
  opendkim,
};

class Signer {
 public:
  // Loads every key (see the contract). `from_domain` is the domain of the campaign's
  // From address: each key's domain must be that domain or a parent of it (relaxed
  // DMARC alignment), else a KeyError. Throws std::invalid_argument for an empty key
  // list, an empty or malformed domain or selector.
  static std::unique_ptr<Signer> create(std::vector<KeySpec> keys, std::string_view from_domain,
                                        Backend backend = Backend::native);

  virtual ~Signer() = default;

  // Returns the DKIM-Signature field(s) for `wire_message` (see the contract), t= now.
  std::string sign(std::string_view wire_message) const;
  // The same with t=`signing_time` (seconds since the Unix epoch): reproducible output.
  virtual std::string sign(std::string_view wire_message, std::int64_t signing_time) const = 0;

 protected:
  Signer() = default;
};

// `kurier dkim keygen`: generates a key (RSA kKeygenRsaBits, or Ed25519), writes it as
// PKCS#8 PEM to `key_out` with mode 0600 (never overwrites: KeyError if the file
// exists), and returns the record to publish, in zone-file syntax with the value split
// into strings of at most 255 bytes:
//   k1._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "...AQAB" )
// Throws std::invalid_argument for a malformed domain or selector.
std::string keygen(Algorithm algorithm, const std::string& domain, const std::string& selector,
                   const std::filesystem::path& key_out);

// The DNS record value for the public half of a private key file:
// "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or
// "v=DKIM1; k=ed25519; p=<base64 of the 32-byte key>" (RFC 8463 §4.2).
// Throws KeyError like create().
std::string public_record(const std::filesystem::path& key_file);

// The algorithm of a private key file. Throws KeyError like create().
Algorithm key_algorithm(const std::filesystem::path& key_file);

// `value` (a public_record()) as the zone-file line to publish, split into strings of at
// most 255 bytes: <selector>._domainkey.<domain>. IN TXT ( "..." "..." ).
std::string zone_record(const std::string& domain, const std::string& selector, std::string_view value);

// `kurier dkim check`: compares a published key record (a TXT record's strings joined)
// with `expected` (public_record() of the private key). They match when the published
// record is a DKIM key record (v=DKIM1 if v= is present) with the same key type (k=,
// default rsa) and the same p= (whitespace ignored, RFC 6376 §3.6.1). Returns "" on a
// match, else the reason, e.g. "p= is empty: the key is revoked".
std::string record_mismatch(std::string_view published, std::string_view expected);

}  // namespace kurier::dkim
