// Reading stored mail for `kurier bounce ingest`: a single message file (.eml), an
// mbox file ("From " separated, mboxrd ">From " unescaping) or a Maildir (the files
// in new/ and cur/). Pure file reading, no parsing of the messages themselves.
// Main thread; unreadable paths are InputError naming the path.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::engine {

struct StoredMessage {
  std::string origin;  // "box.mbox#3" (1-based), "Maildir/new/1700000000.x", "a.eml"
  std::string raw;
};

// Largest message file read: bounces carry the original message, but nothing real
// comes near this; a bigger file is refused rather than read into memory.
constexpr std::uintmax_t kMaxMessageFileBytes = 64u << 20;

// Reads one message file whole. InputError naming the file when it is missing, not a
// regular file, unreadable or larger than kMaxMessageFileBytes.
std::string read_message_file(const std::filesystem::path& path);

// Splits mbox text into messages: a message starts at a "From " line at the start of
// the text or after an empty line; that line is dropped, the blank separator line
// before the next one too, and ">From ", ">>From ", ... lose one '>' (mboxrd).
std::vector<std::string> split_mbox(std::string_view text);

// Checks that `path` is a readable file or directory (InputError otherwise): used to
// refuse a bad command line before anything is applied.
void check_mail_path(const std::filesystem::path& path);

// Calls `fn` for each message under `path`: a file starting with "From " is an mbox,
// any other file one message; a directory with new/ or cur/ is a Maildir, any other
// directory its regular files (sorted by name, not recursive). Throws InputError.
// Does not check `path` itself: run check_mail_path() on the command line first.
void for_each_stored_message(const std::filesystem::path& path, const std::function<void(StoredMessage&&)>& fn);

}  // namespace kurier::engine
