// Message files for kurier-sink's --store. Runs synchronously on the worker thread of
// the session that accepted the message; an I/O error returns false (the session then
// answers 451 so the client keeps the message) and leaves no partial .eml behind.
#include "bench/sink/store.h"

#include <cerrno>
#include <chrono>
#include <cstdio>

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

namespace kurier::sink {
namespace {

// Writes all of `parts` to `fd`, continuing after short writes.
bool write_all(int fd, iovec* parts, int count) {
  while (count > 0) {
    ssize_t n = ::writev(fd, parts, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= parts->iov_len) {
      left -= parts->iov_len;
      ++parts;
      --count;
    }
    if (count > 0) {
      parts->iov_base = static_cast<char*>(parts->iov_base) + left;
      parts->iov_len -= left;
    }
  }
  return true;
}

}  // namespace

MessageStore::MessageStore(std::filesystem::path root, const std::vector<std::string>& addresses)
    : root_(std::move(root)) {
  for (const std::string& ip : addresses) std::filesystem::create_directories(root_ / ip);
}

bool MessageStore::store(const std::string& listen_ip, std::string_view sender,
                         std::span<const std::string> recipients, std::string_view content) {
  std::string header;
  header.reserve(64 + sender.size() + recipients.size() * 32);
  header += "Return-Path: <";
  header += sender;
  header += ">\r\nX-Sink-Rcpt: ";
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    if (i > 0) header += ", ";
    header += '<';
    header += recipients[i];
    header += '>';
  }
  header += "\r\n";

  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const std::string unique = std::to_string(ns) + '-' + std::to_string(counter_.fetch_add(1) + 1);
  const std::string dir = (root_ / listen_ip).string();
  const std::string tmp = dir + '/' + unique + ".tmp";
  const std::string final_name = dir + '/' + unique + ".eml";

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  iovec parts[2] = {{header.data(), header.size()}, {const_cast<char*>(content.data()), content.size()}};
  bool ok = write_all(fd, parts, 2);
  ok = (::close(fd) == 0) && ok;
  if (ok) ok = std::rename(tmp.c_str(), final_name.c_str()) == 0;
  if (!ok) {
    const int saved = errno;  // for the caller's log line
    ::unlink(tmp.c_str());
    errno = saved;
  }
  return ok;
}

}  // namespace kurier::sink
