// The scripted SMTP server used by the client tests (see scripted_server.h).
// Runs scripts on its own thread with blocking sockets; a script's failure is recorded
// in errors() for the test to check, never thrown across threads.
#include "tests/smtp/scripted_server.h"

#include <csignal>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace kurier::test {

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// How long accept() waits between checks of the stop flag.
constexpr int kAcceptPollMs = 50;

SSL_CTX* server_context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_server_method());
    if (!c) throw std::runtime_error("SSL_CTX_new failed");
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    if (!key || !cert) throw std::runtime_error("test certificate: key generation failed");
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                               -1, 0);
    X509_set_issuer_name(cert, name);
    if (X509_sign(cert, key, EVP_sha256()) == 0) throw std::runtime_error("test certificate: signing failed");
    if (SSL_CTX_use_certificate(c, cert) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1) {
      throw std::runtime_error("test certificate: SSL_CTX_use_* failed");
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return c;
  }();
  return ctx;
}

}  // namespace

void ensure_test_certificate() { server_context(); }

ServerConn::~ServerConn() { close(); }

void ServerConn::close() {
  if (ssl_) {
    SSL_free(static_cast<SSL*>(ssl_));
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void ServerConn::send(std::string_view raw) {
  while (!raw.empty()) {
    long n = 0;
    if (ssl_) {
      n = SSL_write(static_cast<SSL*>(ssl_), raw.data(), static_cast<int>(raw.size()));
    } else {
      n = ::send(fd_, raw.data(), raw.size(), MSG_NOSIGNAL);
    }
    if (n <= 0) throw PeerClosed{};
    raw.remove_prefix(static_cast<std::size_t>(n));
  }
}

bool ServerConn::fill() {
  std::string chunk(kReadChunk, '\0');
  long n = 0;
  if (ssl_) {
    n = SSL_read(static_cast<SSL*>(ssl_), chunk.data(), static_cast<int>(chunk.size()));
  } else {
    n = ::recv(fd_, chunk.data(), chunk.size(), 0);
  }
  if (n <= 0) return false;
  chunk.resize(static_cast<std::size_t>(n));
  in_ += chunk;
  reads_.push_back(std::move(chunk));
  return true;
}

std::string ServerConn::read_line() {
  for (;;) {
    auto lf = in_.find('\n');
    if (lf != std::string::npos) {
      std::string line = in_.substr(0, lf);
      in_.erase(0, lf + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (!fill()) throw PeerClosed{};
  }
}

std::string ServerConn::read_data() {
  for (;;) {
    if (in_.starts_with(".\r\n")) {  // empty message
      in_.erase(0, 3);
      return {};
    }
    auto end = in_.find("\r\n.\r\n");
    if (end != std::string::npos) {
      std::string data = in_.substr(0, end + 2);
      in_.erase(0, end + 5);
      return data;
    }
    if (!fill()) throw PeerClosed{};
  }
}

std::string ServerConn::read_chunk() {
  if (in_.empty() && !fill()) throw PeerClosed{};
  std::string out = std::move(in_);
  in_.clear();
  return out;
}

std::string ServerConn::read_until_eof() {
  while (fill()) {
  }
  std::string all = std::move(in_);
  in_.clear();
  return all;
}

void ServerConn::starttls() {
  SSL* ssl = SSL_new(server_context());
  SSL_set_fd(ssl, fd_);
  ssl_ = ssl;
  in_.clear();  // anything pipelined after STARTTLS in plaintext is discarded
  if (SSL_accept(ssl) != 1) {
    ERR_clear_error();
    throw std::runtime_error("SSL_accept failed");
  }
}

ScriptedServer::ScriptedServer(Script script, int connections) {
  // SSL_write/SSL_accept write through a socket BIO: a client that hangs up mid-handshake
  // (e.g. after refusing the certificate) must be an error here, not a SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("ScriptedServer: bind/listen failed");
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this, s = std::move(script), connections]() mutable { loop(std::move(s), connections); });
}

ScriptedServer::~ScriptedServer() {
  wait(std::chrono::milliseconds(0));
  ::close(listen_fd_);
}

void ScriptedServer::loop(Script script, int connections) {
  for (int i = 0; i < connections && !stopping_; ++i) {
    pollfd p{listen_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, kAcceptPollMs);
    if (ready <= 0) {
      --i;  // nothing yet: keep waiting for this connection
      continue;
    }
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++accepted_;
    current_fd_ = fd;
    // Replies go out one send() each; with Nagle the second would wait for the client's
    // delayed ACK (40 ms), which would make every pipelined test crawl.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ServerConn conn(fd);
    try {
      script(conn);
    } catch (const PeerClosed&) {
      // The client went away: the normal end of many scripts.
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      errors_.push_back(e.what());
    }
    current_fd_ = -1;
    conn.close();
  }
  std::lock_guard lock(mutex_);
  done_ = true;
  done_cv_.notify_all();
}

bool ScriptedServer::wait(std::chrono::milliseconds timeout) {
  bool finished = false;
  {
    std::unique_lock lock(mutex_);
    finished = done_cv_.wait_for(lock, timeout, [this] { return done_; });
  }
  if (!finished) {
    stopping_ = true;
    int fd = current_fd_.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);  // wakes a script blocked in recv
  }
  if (thread_.joinable()) thread_.join();
  return finished;
}

std::vector<std::string> ScriptedServer::errors() {
  std::lock_guard lock(mutex_);
  return errors_;
}

}  // namespace kurier::test
