// Ephemeral self-signed certificate for kurier-sink's STARTTLS (OpenSSL 3 API).
// Runs once on the main thread at start-up; any OpenSSL failure throws
// std::runtime_error and the sink exits before printing "ready".
#include "bench/sink/tls.h"

#include <memory>
#include <stdexcept>
#include <string>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace kurier::sink {
namespace {

// Long enough for any test or benchmark run; short because it is never reused.
constexpr long kValiditySeconds = 7L * 24 * 3600;
// Clock skew allowance: notBefore slightly in the past.
constexpr long kBackdateSeconds = 3600;

[[noreturn]] void openssl_fail(const char* what) {
  char buf[256] = "unknown error";
  if (unsigned long err = ERR_get_error()) ERR_error_string_n(err, buf, sizeof buf);
  throw std::runtime_error(std::string("TLS setup: ") + what + ": " + buf);
}

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertDeleter {
  void operator()(X509* cert) const { X509_free(cert); }
};

}  // namespace

void install_ephemeral_certificate(SSL_CTX* ctx) {
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) openssl_fail("EC P-256 key generation");

  std::unique_ptr<X509, CertDeleter> cert(X509_new());
  if (!cert) openssl_fail("X509_new");
  if (X509_set_version(cert.get(), 2) != 1) openssl_fail("X509_set_version");  // v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) openssl_fail("RAND_bytes");
  serial[0] &= 0x7f;  // positive
  BIGNUM* serial_bn = BN_bin2bn(serial, sizeof serial, nullptr);
  if (!serial_bn || !BN_to_ASN1_INTEGER(serial_bn, X509_get_serialNumber(cert.get()))) {
    BN_free(serial_bn);
    openssl_fail("serial number");
  }
  BN_free(serial_bn);
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds))
    openssl_fail("validity");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* cn = reinterpret_cast<const unsigned char*>("kurier-sink");
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, -1, -1, 0) != 1) openssl_fail("subject");
  if (X509_set_issuer_name(cert.get(), name) != 1) openssl_fail("issuer");
  if (X509_set_pubkey(cert.get(), key.get()) != 1) openssl_fail("public key");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) openssl_fail("signing");

  if (SSL_CTX_use_certificate(ctx, cert.get()) != 1) openssl_fail("SSL_CTX_use_certificate");
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) openssl_fail("SSL_CTX_use_PrivateKey");
  if (SSL_CTX_check_private_key(ctx) != 1) openssl_fail("SSL_CTX_check_private_key");
}

}  // namespace kurier::sink
