#pragma once

// Runs a program to completion and collects its output, bounded in time and
// bytes: for call threads that need a short-lived helper (precommit's git).
// Blocking; never use it on an event loop.

#include <chrono>
#include <cstddef>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace exai::core {

struct ProcessOptions {
  std::chrono::steady_clock::time_point deadline; // killed (SIGKILL) when it passes
  std::stop_token stop;                           // killed when stop is requested
  std::size_t max_output = std::size_t{1}
                           << 20U; // bytes kept of stdout (the rest is read and dropped)
  std::size_t max_error = std::size_t{16} << 10U; // bytes kept of stderr
  // The child's environment: these variables of this process (never the
  // whole environment: it holds the API keys), then `environment`.
  std::vector<std::string> inherit = {"PATH", "HOME", "USER", "TMPDIR", "XDG_CONFIG_HOME"};
  std::vector<std::string> environment; // "NAME=value"
};

struct ProcessResult {
  int exit_code = -1;     // -1 when it did not exit normally
  std::string out;        // stdout, at most max_output bytes
  std::string err;        // stderr, at most max_error bytes
  bool truncated = false; // stdout was longer than max_output
  bool killed = false;    // the deadline passed or stop was requested
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null, its own default
// signal mask and dispositions, and no descriptor of this process but the
// pipes. nullopt when it could not be started.
std::optional<ProcessResult> run_process(const std::vector<std::string>& argv,
                                         const ProcessOptions& options);

} // namespace exai::core
