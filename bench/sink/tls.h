// kurier-sink's STARTTLS certificate: an ephemeral self-signed EC P-256 certificate
// (CN=kurier-sink), generated in memory at start-up with the OpenSSL 3 API. Nothing
// is written to disk; clients are expected not to verify it.
#pragma once

#include <openssl/types.h>

namespace kurier::sink {

// Generates a key and certificate and installs both in `ctx`.
// Throws std::runtime_error with the OpenSSL error on failure.
void install_ephemeral_certificate(SSL_CTX* ctx);

}  // namespace kurier::sink
