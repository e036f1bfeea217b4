#pragma once

// The daemon's recent log lines in memory, for the `activity` tool: an
// spdlog sink that every logger writes to (core, net, cmd, and "activity",
// which carries one line per finished call and goes nowhere else). Bounded
// twice: at most kMaxLines lines, each cut to kMaxLineBytes.

#include <spdlog/details/circular_q.h>
#include <spdlog/sinks/base_sink.h>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace exai::core {

struct ActivityLine {
  std::chrono::system_clock::time_point time;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string logger;
  std::string message;

  // "2026-01-31T12:00:00.123Z info [core] message".
  std::string text() const;
};

class ActivityLog final : public spdlog::sinks::base_sink<std::mutex> {
public:
  static constexpr std::size_t kMaxLines = 2000;
  static constexpr std::size_t kMaxLineBytes = 1024;

  ActivityLog();

  // The kept lines, oldest first.
  std::vector<ActivityLine> lines();

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

private:
  spdlog::details::circular_q<ActivityLine> lines_; // guarded by base_sink's mutex
};

// The process's activity log (a function-local static): log::init() attaches
// it to every logger.
const std::shared_ptr<ActivityLog>& activity_log();

} // namespace exai::core
