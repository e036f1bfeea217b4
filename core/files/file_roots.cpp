#include "core/files/file_roots.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

namespace exai::core {

namespace {

std::string
canonical(const std::string& path)
{
  const std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr),
                                                             &std::free);
  return resolved ? std::string(resolved.get()) : std::string();
}

// The path the kernel opened for `fd`: immune to renames and symlink swaps
// between our check and the open.
std::string
opened_path(int fd)
{
  std::array<char, PATH_MAX> buffer{};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buffer.data(), buffer.size() - 1);
  return n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : std::string();
}

} // namespace

FileRoots::FileRoots(const std::vector<std::string>& roots)
{
  for (const auto& root : roots) {
    std::string resolved = canonical(root);
    roots_.push_back(resolved.empty() ? root : std::move(resolved));
  }
}

std::string
FileRoots::lexical_problem(std::string_view path)
{
  if (path.empty()) {
    return "must not be empty";
  }
  if (path.find('\0') != std::string_view::npos) {
    return "must not contain NUL";
  }
  if (path.front() != '/') {
    return "must be an absolute path (relative paths are refused)";
  }
  std::size_t start = 0;
  while (start < path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    if (path.substr(start, end - start) == "..") {
      return "must not contain '..' components";
    }
    start = end + 1;
  }
  return {};
}

bool
FileRoots::contains(std::string_view path) const
{
  for (const auto& root : roots_) {
    if (path == root || root == "/" ||
        (path.size() > root.size() && path.substr(0, root.size()) == root &&
         path[root.size()] == '/')) {
      return true;
    }
  }
  return false;
}

std::string
FileRoots::describe() const
{
  std::string text;
  for (const auto& root : roots_) {
    text += (text.empty() ? "" : ":") + root;
  }
  return text.empty() ? "(none)" : text;
}

std::variant<OpenedPath, PathRefusal>
FileRoots::open(std::string_view requested) const
{
  const std::string path(requested);
  if (auto problem = lexical_problem(path); !problem.empty()) {
    return PathRefusal{path, std::move(problem)};
  }
  const std::string resolved = canonical(path);
  if (resolved.empty()) {
    const int error = errno;
    return PathRefusal{path,
                       error == ENOENT || error == ENOTDIR ? "does not exist"
                       : error == EACCES                   ? "is not readable by the daemon"
                                                           : "cannot be resolved"};
  }
  const std::string outside = "is outside the allowed roots (EXAI_FILE_ROOTS=" + describe() + ")";
  if (!contains(resolved)) {
    return PathRefusal{path, resolved == path ? outside : outside + " once symlinks are resolved"};
  }
  const std::string special =
      "is not a regular file or directory (devices, FIFOs and sockets are refused)";
  struct stat before {};
  if (::stat(resolved.c_str(), &before) == 0 && !S_ISREG(before.st_mode) &&
      !S_ISDIR(before.st_mode)) {
    return PathRefusal{path, special}; // never opened: opening a device can have effects
  }
  OpenedPath opened;
  opened.fd.reset(::open(resolved.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!opened.fd) {
    return PathRefusal{path,
                       errno == EACCES ? "is not readable by the daemon" : "cannot be opened"};
  }
  if (::fstat(opened.fd.get(), &opened.info) != 0) {
    return PathRefusal{path, "cannot be inspected"};
  }
  if (!S_ISREG(opened.info.st_mode) && !S_ISDIR(opened.info.st_mode)) {
    return PathRefusal{path, special};
  }
  opened.path = opened_path(opened.fd.get());
  if (opened.path.empty() || !contains(opened.path)) {
    return PathRefusal{path, outside};
  }
  return opened;
}

} // namespace exai::core
