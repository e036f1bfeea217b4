#include "core/health/state_dir.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace exai::core {

namespace {

std::string
errno_text()
{
  return std::strerror(errno);
}

void
write_all(int fd, std::string_view content, const std::string& path)
{
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw Error(Errc::internal_error, "cannot write " + path + ": " + errno_text());
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
}

} // namespace

void
write_file_atomically(const std::string& path, std::string_view content)
{
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error(Errc::internal_error, "cannot create " + temp + ": " + errno_text());
  }
  try {
    ::fchmod(fd, 0600); // even if an old temp file had other bits
    write_all(fd, content, temp);
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(temp.c_str());
    throw Error(Errc::internal_error, "cannot rename " + temp + " to " + path + ": " + reason);
  }
}

PidFile::PidFile(const std::string& dir)
    : path_(dir + "/ws_daemon.pid")
{
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw Error(Errc::config_invalid,
                "invalid EXAI_STATE_DIR='" + dir + "': cannot create it: " + ec.message());
  }
  ::chmod(dir.c_str(), 0700);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw Error(Errc::config_invalid,
                "invalid EXAI_STATE_DIR='" + dir + "': cannot open " + path_ + ": " + errno_text());
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buffer[32] = {};
    const ssize_t n = ::pread(fd_, buffer, sizeof buffer - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string other = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "?";
    while (!other.empty() && (other.back() == '\n' || other.back() == ' ')) {
      other.pop_back();
    }
    throw Error(Errc::already_running,
                "another exai serve (pid " + other + ") already uses state dir " + dir);
  }
  // Ours now, whether the file is new or a dead daemon's leftover.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0) {
    log::get("core")->warn("cannot truncate pid file path={}", path_);
  }
  try {
    write_all(fd_, pid, path_);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

PidFile::~PidFile()
{
  if (fd_ >= 0) {
    ::unlink(path_.c_str());
    ::close(fd_); // releases the lock
  }
}

HealthFileWriter::HealthFileWriter(std::string path,
                                   std::function<std::string()> render,
                                   std::chrono::milliseconds interval)
    : path_(std::move(path))
    , render_(std::move(render))
    , interval_(interval)
    , thread_([this] { loop(); })
{
}

HealthFileWriter::~HealthFileWriter()
{
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  const std::lock_guard lock(write_mutex_);
  ::unlink(path_.c_str());
}

void
HealthFileWriter::write_now() noexcept
{
  try {
    const std::string content = render_();
    const std::lock_guard lock(write_mutex_);
    write_file_atomically(path_, content);
  } catch (const std::exception& e) {
    log::get("core")->warn("health file not written path={} error=\"{}\"", path_, e.what());
  }
}

void
HealthFileWriter::loop()
{
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    write_now();
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

} // namespace exai::core
