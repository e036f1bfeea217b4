#pragma once

// The files a call names, read under the file roots' rules and embedded as
// text with line numbers and per-file markers, within a token budget. Files
// that do not fit, or need not be sent, are listed with the reason.

#include "core/files/file_roots.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <stop_token>
#include <string>
#include <vector>

namespace exai::core {

// What identifies a version of a file cheaply: an unchanged size and mtime
// means "already sent, unchanged" within a conversation.
struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

struct EmbeddedFile {
  std::string path; // canonical
  std::size_t lines = 0;
  std::size_t tokens = 0;
  FileStamp stamp;
};

struct SkippedFile {
  std::string path;
  std::string reason;
};

struct FileRequest {
  std::vector<std::string> paths; // as the call gave them
  std::string field = "files";    // names them in errors: files[2]
  std::size_t token_budget = 0;
  std::size_t max_file_bytes = std::size_t{1} << 20U;
  // Files already in the conversation, by canonical path.
  const std::map<std::string, FileStamp, std::less<>>* already_sent = nullptr;
  std::stop_token stop;
};

struct FileBundle {
  std::string text; // the embedded blocks, in order
  std::vector<EmbeddedFile> embedded;
  std::vector<SkippedFile> skipped;
  std::size_t tokens = 0;
};

// Tokens of `text` as exai estimates them (4 bytes per token, rounded up):
// cheap, and conservative for code.
std::size_t estimate_tokens(std::string_view text) noexcept;

// `content` with CRLF/CR made LF, each line numbered ("  12│ text"), between
// "--- BEGIN FILE: path (N lines) ---" and "--- END FILE: path ---".
std::string
render_file(std::string_view path, std::string_view content, std::size_t* lines = nullptr);

// Reads what `request` names. A path the call named that breaks a rule
// throws Error(validation_error) naming the field (files[i]), the path and
// the rule; inside a directory, such entries are skipped and reported.
// Directories expand recursively, skipping hidden entries, VCS, dependency
// and build folders, binary files and files over max_file_bytes. Order: the
// files the call named, in its order, then directory files newest first;
// whatever does not fit the budget is skipped with its size.
FileBundle collect_files(const FileRoots& roots, const FileRequest& request);

} // namespace exai::core
