#include "core/health/activity_log.hpp"

#include "core/util/text.hpp"

#include <spdlog/fmt/chrono.h>

namespace exai::core {

std::string
ActivityLine::text() const
{
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  const auto level_name = spdlog::level::to_string_view(level);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z {} [{}] {}",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(time)),
                     ms.count() % 1000,
                     std::string_view(level_name.data(), level_name.size()),
                     logger,
                     message);
}

ActivityLog::ActivityLog()
    : lines_(kMaxLines)
{
}

std::vector<ActivityLine>
ActivityLog::lines()
{
  const std::lock_guard lock(mutex_);
  std::vector<ActivityLine> out;
  out.reserve(lines_.size());
  for (std::size_t i = 0; i < lines_.size(); ++i) {
    out.push_back(lines_.at(i));
  }
  return out;
}

void
ActivityLog::sink_it_(const spdlog::details::log_msg& msg)
{
  lines_.push_back(ActivityLine{
      msg.time,
      msg.level,
      std::string(msg.logger_name.data(), msg.logger_name.size()),
      printable(std::string_view(msg.payload.data(), msg.payload.size()), kMaxLineBytes)});
}

const std::shared_ptr<ActivityLog>&
activity_log()
{
  static const auto log = std::make_shared<ActivityLog>();
  return log;
}

} // namespace exai::core
