#include "core/files/file_bundle.hpp"

#include "core/error.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <set>
#include <utility>

namespace exai::core {

namespace {

// Folders that hold tooling output or other people's code, not the user's.
constexpr std::array<std::string_view, 16> kExcludedDirs = {"node_modules",
                                                            "build",
                                                            "dist",
                                                            "target",
                                                            "out",
                                                            "vendor",
                                                            "__pycache__",
                                                            "venv",
                                                            "site-packages",
                                                            "obj",
                                                            "coverage",
                                                            ".git",
                                                            "bower_components",
                                                            "cmake-build-debug",
                                                            "cmake-build-release",
                                                            "Pods"};
constexpr std::size_t kMaxWalkEntries = 10000;
constexpr int kMaxDepth = 32;
constexpr std::size_t kBinaryProbeBytes = 8192;

struct Candidate {
  std::string path;
  OpenedPath opened;
  bool named = false; // the call named it (most relevant)
  std::size_t order = 0;
};

FileStamp
stamp_of(const struct stat& info)
{
  return FileStamp{static_cast<std::uint64_t>(info.st_size),
                   static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000LL +
                       info.st_mtim.tv_nsec};
}

bool
excluded_dir(std::string_view name)
{
  return std::find(kExcludedDirs.begin(), kExcludedDirs.end(), name) != kExcludedDirs.end();
}

class Walker {
public:
  Walker(const FileRoots& roots, std::vector<Candidate>& out, std::vector<SkippedFile>& skipped)
      : roots_(roots)
      , out_(out)
      , skipped_(skipped)
  {
  }

  void walk(OpenedPath dir, int depth)
  {
    if (!visited_.insert({dir.info.st_dev, dir.info.st_ino}).second) {
      return; // a loop through a symlink
    }
    if (depth > kMaxDepth) {
      skipped_.push_back({dir.path, "nested deeper than " + std::to_string(kMaxDepth) + " levels"});
      return;
    }
    const int fd = ::dup(dir.fd.get());
    DIR* stream = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (stream == nullptr) {
      if (fd >= 0) {
        ::close(fd);
      }
      skipped_.push_back({dir.path, "cannot be listed"});
      return;
    }
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(stream)) {
      const std::string_view name(entry->d_name);
      if (name != "." && name != "..") {
        names.emplace_back(name);
      }
    }
    ::closedir(stream);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      if (++entries_ > kMaxWalkEntries) {
        if (!truncated_) {
          truncated_ = true;
          skipped_.push_back(
              {dir.path,
               "directory walk stopped after " + std::to_string(kMaxWalkEntries) + " entries"});
        }
        return;
      }
      const std::string child = dir.path + "/" + name;
      if (name.front() == '.') {
        skipped_.push_back({child, "hidden"});
        continue;
      }
      auto opened = roots_.open(child);
      if (auto* refusal = std::get_if<PathRefusal>(&opened)) {
        skipped_.push_back({child, refusal->rule});
        continue;
      }
      auto& path = std::get<OpenedPath>(opened);
      if (path.directory()) {
        if (excluded_dir(name)) {
          skipped_.push_back({child, "excluded folder (dependencies or build output)"});
          continue;
        }
        walk(std::move(path), depth + 1);
        continue;
      }
      std::string canonical = path.path;
      out_.push_back({std::move(canonical), std::move(path), false, 0});
    }
  }

private:
  const FileRoots& roots_;
  std::vector<Candidate>& out_;
  std::vector<SkippedFile>& skipped_;
  std::set<std::pair<dev_t, ino_t>> visited_;
  std::size_t entries_ = 0;
  bool truncated_ = false;
};

// Up to `limit` + 1 bytes: one more than allowed tells "too large" apart
// from a file that shrank.
bool
read_all(int fd, std::size_t limit, std::string& out)
{
  out.clear();
  std::array<char, 65536> buffer{};
  off_t offset = 0;
  while (out.size() <= limit) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    if (n == 0) {
      break;
    }
    out.append(buffer.data(), static_cast<std::size_t>(n));
    offset += n;
  }
  return true;
}

bool
looks_binary(std::string_view content)
{
  return content.substr(0, kBinaryProbeBytes).find('\0') != std::string_view::npos;
}

std::string
size_text(std::uint64_t bytes)
{
  return std::to_string(bytes) + " bytes";
}

} // namespace

std::size_t
estimate_tokens(std::string_view text) noexcept
{
  return (text.size() + 3) / 4;
}

std::string
render_file(std::string_view path, std::string_view content, std::size_t* lines_out)
{
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < content.size()) {
    std::size_t end = content.find_first_of("\r\n", start);
    if (end == std::string_view::npos) {
      lines.push_back(content.substr(start));
      break;
    }
    lines.push_back(content.substr(start, end - start));
    start = end + 1;
    if (content[end] == '\r' && start < content.size() && content[start] == '\n') {
      ++start;
    }
  }
  const std::size_t width = std::max<std::size_t>(4, std::to_string(lines.size()).size());
  std::string out = "--- BEGIN FILE: " + std::string(path) + " (" + std::to_string(lines.size()) +
                    " lines) ---\n";
  out.reserve(out.size() + content.size() + lines.size() * (width + 3) + path.size() + 24);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string number = std::to_string(i + 1);
    out.append(width - number.size(), ' ');
    out += number;
    out += "\xe2\x94\x82 "; // "│ "
    out += lines[i];
    out += '\n';
  }
  out += "--- END FILE: " + std::string(path) + " ---\n";
  if (lines_out != nullptr) {
    *lines_out = lines.size();
  }
  return out;
}

FileBundle
collect_files(const FileRoots& roots, const FileRequest& request)
{
  FileBundle bundle;
  std::vector<Candidate> named;
  std::vector<Candidate> found;
  Walker walker(roots, found, bundle.skipped);
  for (std::size_t i = 0; i < request.paths.size(); ++i) {
    auto opened = roots.open(request.paths[i]);
    if (auto* refusal = std::get_if<PathRefusal>(&opened)) {
      const std::string field = request.field + "[" + std::to_string(i) + "]";
      throw Error(Errc::validation_error,
                  field + " '" + refusal->path + "' " + refusal->rule,
                  {{"field", field}, {"value", refusal->path}, {"rule", refusal->rule}});
    }
    auto& path = std::get<OpenedPath>(opened);
    if (path.directory()) {
      walker.walk(std::move(path), 0);
    } else {
      std::string canonical = path.path;
      named.push_back({std::move(canonical), std::move(path), true, i});
    }
  }
  std::stable_sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
    return a.opened.info.st_mtim.tv_sec != b.opened.info.st_mtim.tv_sec
               ? a.opened.info.st_mtim.tv_sec > b.opened.info.st_mtim.tv_sec
               : a.opened.info.st_mtim.tv_nsec > b.opened.info.st_mtim.tv_nsec;
  });
  for (auto& candidate : found) {
    named.push_back(std::move(candidate));
  }

  std::set<std::string, std::less<>> seen;
  std::string content;
  for (auto& candidate : named) {
    if (request.stop.stop_requested()) {
      throw Error(Errc::cancelled, "cancelled while reading files");
    }
    if (!seen.insert(candidate.path).second) {
      continue;
    }
    const FileStamp stamp = stamp_of(candidate.opened.info);
    if (request.already_sent != nullptr) {
      const auto sent = request.already_sent->find(candidate.path);
      if (sent != request.already_sent->end() && sent->second == stamp) {
        bundle.skipped.push_back(
            {candidate.path, "unchanged since it was sent earlier in this conversation"});
        continue;
      }
    }
    if (stamp.size > request.max_file_bytes) {
      bundle.skipped.push_back({candidate.path,
                                "larger than EXAI_FILE_MAX_BYTES (" + size_text(stamp.size) +
                                    " > " + size_text(request.max_file_bytes) + ")"});
      continue;
    }
    const std::size_t left = request.token_budget - bundle.tokens;
    if (stamp.size / 4 > left) {
      bundle.skipped.push_back({candidate.path,
                                "over the token budget (~" + std::to_string(stamp.size / 4) +
                                    " tokens, " + std::to_string(left) + " left)"});
      continue;
    }
    if (!read_all(candidate.opened.fd.get(), request.max_file_bytes, content)) {
      bundle.skipped.push_back({candidate.path, "cannot be read"});
      continue;
    }
    if (content.size() > request.max_file_bytes) {
      bundle.skipped.push_back({candidate.path, "grew past EXAI_FILE_MAX_BYTES while being read"});
      continue;
    }
    if (looks_binary(content)) {
      bundle.skipped.push_back({candidate.path, "binary"});
      continue;
    }
    std::size_t lines = 0;
    std::string block = render_file(candidate.path, content, &lines);
    const std::size_t tokens = estimate_tokens(block);
    if (tokens > left) {
      bundle.skipped.push_back({candidate.path,
                                "over the token budget (~" + std::to_string(tokens) + " tokens, " +
                                    std::to_string(left) + " left)"});
      continue;
    }
    bundle.tokens += tokens;
    bundle.text += block;
    bundle.embedded.push_back({candidate.path, lines, tokens, stamp});
  }
  return bundle;
}

} // namespace exai::core
