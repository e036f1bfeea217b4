#pragma once

// The daemon reads the user's files on behalf of any local client, so every
// path a call names is checked here before a byte is read: absolute, no
// `..`, resolving (symlinks included) under one of EXAI_FILE_ROOTS, and a
// regular file or a directory — never a device, FIFO or socket. The check is
// made on the descriptor actually opened (/proc/self/fd), so a path swapped
// for a symlink between check and open is still caught.

#include "core/util/unique_fd.hpp"

#include <sys/stat.h>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core {

// A path that passed every rule, open for reading.
struct OpenedPath {
  UniqueFd fd;
  std::string path; // canonical (symlinks resolved)
  struct stat info {};
  bool directory() const noexcept { return S_ISDIR(info.st_mode); }
};

// Why a path was refused: the rule, for messages like
// "files[0] '/etc/passwd' is outside the allowed roots (...)".
struct PathRefusal {
  std::string path;
  std::string rule;
};

class FileRoots {
public:
  // `roots`: absolute directories. Each is resolved once (realpath); a root
  // that does not exist is kept as given and simply matches nothing.
  explicit FileRoots(const std::vector<std::string>& roots);

  const std::vector<std::string>& roots() const noexcept { return roots_; }

  // The rules that need no file system access: non-empty, absolute, no `..`
  // component, no NUL. Returns the broken rule, or "" when none is.
  static std::string lexical_problem(std::string_view path);

  // Opens `path` (O_NOFOLLOW on the resolved path, O_NONBLOCK so a FIFO can
  // never block) after checking every rule.
  std::variant<OpenedPath, PathRefusal> open(std::string_view path) const;

  // True when `canonical` is one of the roots or lies beneath one.
  bool contains(std::string_view canonical) const;

  // "/home/u:/srv/code" for messages.
  std::string describe() const;

private:
  std::vector<std::string> roots_; // canonical
};

} // namespace exai::core
