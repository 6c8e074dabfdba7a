// Reading, generating and checking the daemon's API token (see auth_token.h). Any
// thread; a failed RAND_bytes or write throws std::runtime_error naming the file.
#include "engine/ops/auth_token.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/text.h"

namespace kurier::engine {
namespace {

// Random bytes of a generated token (hex-encoded: 64 characters).
constexpr std::size_t kTokenBytes = 32;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string generate_and_store(const std::filesystem::path& path) {
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("cannot generate an HTTP token: RAND_bytes failed");
  std::string token = text::to_hex({reinterpret_cast<const char*>(bytes), sizeof bytes});
  std::filesystem::create_directories(path.parent_path());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path.string());
  return token;
}

}  // namespace

std::filesystem::path token_file(const Config& config) { return config.queue.path / "http.token"; }

std::string read_token(const Config& config) {
  if (!config.http.token.empty()) return config.http.token;
  std::ifstream in(token_file(config));
  std::string token;
  if (in && std::getline(in, token) && !trim(token).empty()) return trim(token);
  return {};
}

std::string ensure_token(const Config& config) {
  std::string token = read_token(config);
  return token.empty() ? generate_and_store(token_file(config)) : token;
}

bool token_matches(const std::string& authorization, const std::string& token) {
  static constexpr std::string_view kBearer = "Bearer ";
  if (token.empty() || authorization.size() != kBearer.size() + token.size()) return false;
  if (authorization.compare(0, kBearer.size(), kBearer) != 0) return false;
  return CRYPTO_memcmp(authorization.data() + kBearer.size(), token.data(), token.size()) == 0;
}

}  // namespace kurier::engine
