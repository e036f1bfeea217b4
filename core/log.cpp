#include "core/log.hpp"

#include "core/health/activity_log.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/cfg/env.h>
#include <spdlog/fmt/chrono.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <array>
#include <cstdio>
#include <mutex>

namespace exai::core::log {

namespace {

constexpr std::array kLoggerNames = {"core", "net", "cmd"};

// One JSON object per line; nlohmann escapes the message, which a spdlog
// pattern cannot do.
class JsonStderrSink : public spdlog::sinks::base_sink<std::mutex> {
protected:
  void sink_it_(const spdlog::details::log_msg& msg) override
  {
    const nlohmann::json line = {
        {"t", fmt::format("{:%Y-%m-%dT%H:%M:%S}", msg.time)},
        {"level",
         std::string(spdlog::level::to_string_view(msg.level).data(),
                     spdlog::level::to_string_view(msg.level).size())},
        {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

std::mutex&
init_mutex()
{
  static std::mutex mutex;
  return mutex;
}

} // namespace

void
init(spdlog::level::level_enum level, Format format)
{
  const std::lock_guard lock(init_mutex());
  spdlog::sink_ptr sink;
  if (format == Format::json) {
    sink = std::make_shared<JsonStderrSink>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l [%n] %v");
  }
  const spdlog::sink_ptr ring = activity_log();
  for (const char* name : kLoggerNames) {
    spdlog::drop(name);
    auto logger = std::make_shared<spdlog::logger>(name, spdlog::sinks_init_list{sink, ring});
    logger->set_level(level);
    logger->flush_on(spdlog::level::warn);
    spdlog::register_logger(logger);
  }
  // One line per finished call, for the activity tool only: stderr stays
  // quiet under load.
  spdlog::drop("activity");
  auto activity = std::make_shared<spdlog::logger>("activity", ring);
  activity->set_level(spdlog::level::info);
  spdlog::register_logger(activity);
  spdlog::cfg::load_env_levels();
}

std::shared_ptr<spdlog::logger>
get(const std::string& name)
{
  if (auto logger = spdlog::get(name)) {
    return logger;
  }
  static const auto silent =
      std::make_shared<spdlog::logger>("silent", std::make_shared<spdlog::sinks::null_sink_mt>());
  return silent;
}

std::string
redact(std::string_view secret)
{
  if (secret.empty()) {
    return "<empty>";
  }
  return "<redacted len=" + std::to_string(secret.size()) + ">";
}

} // namespace exai::core::log
