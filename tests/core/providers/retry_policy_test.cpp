#include "core/providers/retry_policy.hpp"

#include <catch2/catch.hpp>

#include <chrono>

using exai::core::parse_retry_after;
using exai::core::RetryOptions;
using exai::core::RetryPolicy;
using namespace std::chrono_literals;

TEST_CASE("without jitter the backoff doubles up to the cap", "[core][retry_policy]")
{
  RetryOptions options;
  options.max_attempts = 6;
  options.base_delay = 100ms;
  options.max_delay = 500ms;
  options.max_total = 60s;
  options.jitter = 0.0;
  RetryPolicy policy(options, 1);
  CHECK(policy.next_delay(1, std::nullopt, 0ms) == 100ms);
  CHECK(policy.next_delay(2, std::nullopt, 0ms) == 200ms);
  CHECK(policy.next_delay(3, std::nullopt, 0ms) == 400ms);
  CHECK(policy.next_delay(4, std::nullopt, 0ms) == 500ms);
  CHECK(policy.next_delay(5, std::nullopt, 0ms) == 500ms);
  CHECK_FALSE(policy.next_delay(6, std::nullopt, 0ms));
}

TEST_CASE("jitter takes a seeded random fraction off the delay", "[core][retry_policy]")
{
  RetryOptions options;
  options.max_attempts = 10;
  options.base_delay = 1000ms;
  options.max_delay = 1000ms;
  options.jitter = 0.5;
  RetryPolicy a(options, 42);
  RetryPolicy b(options, 42);
  bool varied = false;
  std::optional<std::chrono::milliseconds> previous;
  for (int i = 1; i < 10; ++i) {
    const auto delay = a.next_delay(1, std::nullopt, 0ms);
    REQUIRE(delay);
    CHECK(*delay >= 500ms);
    CHECK(*delay <= 1000ms);
    CHECK(delay == b.next_delay(1, std::nullopt, 0ms)); // same seed, same sequence
    varied = varied || (previous && *previous != *delay);
    previous = delay;
  }
  CHECK(varied);
}

TEST_CASE("Retry-After replaces the backoff and the total budget bounds it", "[core][retry_policy]")
{
  RetryOptions options;
  options.max_attempts = 5;
  options.base_delay = 100ms;
  options.max_total = 10s;
  RetryPolicy policy(options, 7);
  CHECK(policy.next_delay(1, 3000ms, 0ms) == 3000ms);
  CHECK(policy.next_delay(1, 0ms, 0ms) == 0ms);
  CHECK_FALSE(policy.next_delay(1, 3000ms, 8000ms)); // would end after max_total
  CHECK_FALSE(policy.next_delay(1, std::nullopt, 10s));
}

TEST_CASE("Retry-After parses delta seconds and HTTP dates", "[core][retry_policy]")
{
  const auto now =
      std::chrono::system_clock::from_time_t(784111777); // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(parse_retry_after("120", now) == 120000ms);
  CHECK(parse_retry_after(" 0 ", now) == 0ms);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now) == 10000ms);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now) == 0ms); // in the past
  CHECK_FALSE(parse_retry_after("", now));
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("12abc", now));
  CHECK_FALSE(parse_retry_after("-5", now));
}
