// TLS client contexts that trust a CA file, shared by the SMTP client's certificate
// checks and the MTA-STS policy fetch. Narrow on purpose: no Asio headers here.
#pragma once

#include <string>

namespace boost::asio::ssl {
class context;
}

namespace kurier::smtp {

// One context per trust store file ("" = OpenSSL's default paths, the system store),
// built once for the process and safe to share between threads. Its verify mode is
// verify_none: a caller asks for verification per connection (SSL_set_verify,
// SSL_set1_host), so the SMTP client can also finish a handshake with a bad
// certificate and record why. An unreadable store is logged and then verifies nothing.
boost::asio::ssl::context& trusting_client_context(const std::string& ca_file);

}  // namespace kurier::smtp
