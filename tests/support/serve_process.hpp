#pragma once

// Runs the real `exai serve` binary for end-to-end tests: on an ephemeral
// loopback port (`--port 0`), in a scratch working directory, with exactly
// the environment given (plus PATH, HOME and a private EXAI_STATE_DIR). The
// port is learnt from the daemon's own log line
//   `serve listening host=127.0.0.1 port=NNNNN`
// on stderr, so do not raise --log-level above info. Kills the process on
// destruction.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// The binary under test: the EXAI_BINARY compile definition of the test
// executable (the default argument is evaluated in the caller's file).
#ifdef EXAI_BINARY
#define EXAI_TEST_BINARY EXAI_BINARY
#else
#define EXAI_TEST_BINARY ""
#endif

namespace exai::test {

class ServeProcess {
public:
  using Env = std::map<std::string, std::string>;

  // Starts `binary [global_args] serve --port 0 [args]` (no `--port 0` when
  // `args` has its own --port). Does not wait for
  // anything. Throws std::system_error when the process cannot be spawned.
  explicit ServeProcess(Env env = {},
                        std::vector<std::string> args = {},
                        std::vector<std::string> global_args = {},
                        std::string binary = EXAI_TEST_BINARY);
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  ~ServeProcess();

  // Starts the daemon and waits until it is ready; throws
  // std::runtime_error (with its stderr) when it does not become ready.
  static std::unique_ptr<ServeProcess> start_ready(Env env = {},
                                                   std::vector<std::string> args = {},
                                                   std::string binary = EXAI_TEST_BINARY);

  // Waits until the daemon logged its port and accepts TCP connections.
  // False when it exited or the deadline passed first (see stderr_text()).
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // The listening port (valid after wait_ready() returned true).
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` (e.g. SIGTERM) and waits for the exit code; nullopt when
  // it did not exit in time (it is then killed). A death by signal gives
  // 128 + signal.
  std::optional<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Waits for the process to exit on its own (e.g. a configuration error).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Everything written to stderr so far.
  std::string stderr_text() const;

  // Waits until stderr contains `needle`.
  bool wait_for_stderr(const std::string& needle, std::chrono::milliseconds timeout);

  // VmRSS of the process in KiB (from /proc/PID/status), or nullopt.
  std::optional<long> rss_kib() const;
  // Threads of the process (from /proc/PID/status), or nullopt.
  std::optional<long> thread_count() const;

private:
  void read_stderr(int fd);
  std::optional<long> status_field(const std::string& name) const;

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::uint16_t port_ = 0;
  std::string work_dir_;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string stderr_; // guarded by mutex_
  bool eof_ = false;   // guarded by mutex_
};

} // namespace exai::test
