// kurier-sink's --store: every accepted message as its own file.
//
// Contract: store() writes DIR/<listen-ip>/<ns-timestamp>-<counter>.eml through a
// "<same>.tmp" file and rename(), so a reader polling the directory for "*.eml" never
// sees a partial message. The file holds "Return-Path: <sender>", "X-Sink-Rcpt:
// <rcpt1>, <rcpt2>" (accepted recipients) and the content exactly as received after
// undoing dot-stuffing. Writes are synchronous (the sink is a test tool; page-cache
// writes are fast enough) and safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::sink {

class MessageStore {
 public:
  // Creates DIR/<ip> for every listen address. Throws std::filesystem::filesystem_error.
  MessageStore(std::filesystem::path root, const std::vector<std::string>& addresses);

  // Returns false on an I/O error, with errno set (the caller answers 451 and logs).
  bool store(const std::string& listen_ip, std::string_view sender, std::span<const std::string> recipients,
             std::string_view content);

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace kurier::sink
