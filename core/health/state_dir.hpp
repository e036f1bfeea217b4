#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace exai::core {

// Writes `content` to `path` so that readers see the old or the new file,
// never a partial one: a temporary file (mode 0600) in the same directory,
// then rename(2). Throws Error(internal_error) on I/O failure.
void write_file_atomically(const std::string& path, std::string_view content);

// This daemon's claim on its state directory: `ws_daemon.pid` holding our
// pid under an exclusive flock(2) for the daemon's lifetime. A pid file left
// by a dead daemon carries no lock and is taken over. Move-only; removes the
// pid file when destroyed.
class PidFile {
public:
  // Creates `dir` (0700) if needed and claims it. Throws
  // Error(already_running) naming the other daemon's pid when a live daemon
  // holds it, Error(config_invalid) when the directory is unusable.
  explicit PidFile(const std::string& dir);
  ~PidFile();
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

  const std::string& path() const noexcept { return path_; }

private:
  std::string path_;
  int fd_ = -1;
};

// Rewrites the health file every `interval` and whenever asked, from a
// render function; removes it when destroyed (a clean stop). Thread-safe.
class HealthFileWriter {
public:
  HealthFileWriter(std::string path,
                   std::function<std::string()> render,
                   std::chrono::milliseconds interval);
  ~HealthFileWriter();
  HealthFileWriter(const HealthFileWriter&) = delete;
  HealthFileWriter& operator=(const HealthFileWriter&) = delete;

  // Writes now (on a state change). Failures are logged, never thrown.
  void write_now() noexcept;

  const std::string& path() const noexcept { return path_; }

private:
  void loop();

  const std::string path_;
  const std::function<std::string()> render_;
  const std::chrono::milliseconds interval_;
  std::mutex write_mutex_; // one writer at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false; // guarded by mutex_
  std::thread thread_;
};

} // namespace exai::core
