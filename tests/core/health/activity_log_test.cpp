#include "core/health/activity_log.hpp"

#include <catch2/catch.hpp>
#include <spdlog/logger.h>

#include <memory>

using exai::core::ActivityLog;

TEST_CASE("the activity log keeps the newest lines, each cut to its bound", "[core][activity]")
{
  const auto ring = std::make_shared<ActivityLog>();
  spdlog::logger logger("test", ring);
  logger.set_level(spdlog::level::trace);
  for (std::size_t i = 0; i < ActivityLog::kMaxLines + 5; ++i) {
    logger.info("line {}", i);
  }
  std::string long_message(ActivityLog::kMaxLineBytes * 2, 'x');
  logger.warn("{}", long_message);
  const auto lines = ring->lines();
  REQUIRE(lines.size() == ActivityLog::kMaxLines);
  CHECK(lines.front().message == "line 6");
  CHECK(lines.back().level == spdlog::level::warn);
  CHECK(lines.back().message.size() < ActivityLog::kMaxLineBytes + 32);
  CHECK(lines.front().logger == "test");
  const std::string text = lines.front().text();
  CHECK(text.find(" info [test] line 6") != std::string::npos);
  CHECK(text.find('Z') == 23); // 2026-01-31T12:00:00.123Z
}
