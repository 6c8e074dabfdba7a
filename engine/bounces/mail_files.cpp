// mbox / Maildir / single-file reading for bounce ingest (contract in mail_files.h).
// Main thread; a path that cannot be read is an InputError naming it.
#include "engine/bounces/mail_files.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include "engine/core/input_error.h"

namespace kurier::engine {
namespace fs = std::filesystem;
namespace {

// ">From ", ">>From ": a quoted "From " line (mboxrd).
bool is_quoted_from(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && line[i] == '>') ++i;
  return i > 0 && line.substr(i).starts_with("From ");
}

std::vector<fs::path> sorted_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file()) files.push_back(it->path());
  if (ec) throw InputError(dir.string(), 0, "", "cannot read directory: " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

void each_file_message(const fs::path& file, const std::function<void(StoredMessage&&)>& fn) {
  std::string text = read_message_file(file);
  if (!text.starts_with("From ")) {
    fn(StoredMessage{file.string(), std::move(text)});
    return;
  }
  auto messages = split_mbox(text);
  for (std::size_t i = 0; i < messages.size(); ++i)
    fn(StoredMessage{file.string() + "#" + std::to_string(i + 1), std::move(messages[i])});
}

}  // namespace

std::string read_message_file(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) throw InputError(path.string(), 0, "", "cannot read: " + ec.message());
  if (size > kMaxMessageFileBytes)
    throw InputError(path.string(), 0, "", "larger than " + std::to_string(kMaxMessageFileBytes >> 20) + " MB");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), 0, "", "cannot read file");
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) throw InputError(path.string(), 0, "", "read error");
  return std::move(out).str();
}

std::vector<std::string> split_mbox(std::string_view text) {
  std::vector<std::string> out;
  std::string* current = nullptr;
  bool previous_blank = true;  // the start of the text counts as after a blank line
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl == std::string_view::npos ? text.size() : nl + 1);
    text.remove_prefix(line.size());
    std::string_view content = line;
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.remove_suffix(1);
    if (previous_blank && content.starts_with("From ")) {
      // The blank line before a separator belongs to the mbox, not the message.
      if (current && !current->empty()) {
        auto& m = *current;
        if (m.ends_with("\r\n\r\n")) m.resize(m.size() - 2);
        else if (m.ends_with("\n\n")) m.pop_back();
      }
      current = &out.emplace_back();
      previous_blank = false;
      continue;
    }
    previous_blank = content.empty();
    if (!current) continue;  // text before the first separator: not a message
    if (is_quoted_from(line)) line.remove_prefix(1);
    current->append(line);
  }
  return out;
}

void check_mail_path(const fs::path& path) {
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw InputError(path.string(), 0, "", "no such file or directory");
  if (fs::is_directory(status)) {
    fs::directory_iterator it(path, ec);
    if (ec) throw InputError(path.string(), 0, "", "cannot read directory: " + ec.message());
    return;
  }
  if (!fs::is_regular_file(status)) throw InputError(path.string(), 0, "", "not a file or directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), 0, "", "cannot read file");
}

void for_each_stored_message(const fs::path& path, const std::function<void(StoredMessage&&)>& fn) {
  if (!fs::is_directory(path)) {
    each_file_message(path, fn);
    return;
  }
  const bool maildir = fs::is_directory(path / "new") || fs::is_directory(path / "cur");
  if (!maildir) {
    for (const auto& file : sorted_files(path)) each_file_message(file, fn);
    return;
  }
  // Maildir: every file is exactly one message, whatever its first line says.
  for (const char* sub : {"new", "cur"}) {
    if (!fs::is_directory(path / sub)) continue;
    for (const auto& file : sorted_files(path / sub)) fn(StoredMessage{file.string(), read_message_file(file)});
  }
}

}  // namespace kurier::engine
