#include "core/providers/circuit_breaker.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>

using exai::core::CircuitBreaker;
using namespace std::chrono_literals;

namespace {

// A manual clock the test advances.
struct FakeClock {
  std::shared_ptr<std::chrono::steady_clock::time_point> now =
      std::make_shared<std::chrono::steady_clock::time_point>();
  CircuitBreaker::Clock clock() const
  {
    return [now = now] { return *now; };
  }
  void advance(std::chrono::milliseconds by) const { *now += by; }
};

} // namespace

TEST_CASE("the circuit opens after N consecutive failures and fails fast",
          "[core][circuit_breaker]")
{
  FakeClock clock;
  CircuitBreaker breaker({3, 1000ms}, clock.clock());
  CHECK(breaker.state() == CircuitBreaker::State::closed);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(breaker.allow());
    breaker.record_failure();
    CHECK(breaker.state() == CircuitBreaker::State::closed);
  }
  REQUIRE(breaker.allow());
  breaker.record_failure();
  CHECK(breaker.state() == CircuitBreaker::State::open);
  CHECK(to_string(breaker.state()) == "open");
  CHECK_FALSE(breaker.allow());
  CHECK(breaker.retry_in() == 1000ms);
  clock.advance(400ms);
  CHECK(breaker.retry_in() == 600ms);
}

TEST_CASE("a success resets the consecutive failure count", "[core][circuit_breaker]")
{
  FakeClock clock;
  CircuitBreaker breaker({2, 1000ms}, clock.clock());
  breaker.record_failure();
  breaker.record_success();
  breaker.record_failure();
  CHECK(breaker.state() == CircuitBreaker::State::closed);
}

TEST_CASE("after the cool-down exactly one probe passes; success closes the circuit",
          "[core][circuit_breaker]")
{
  FakeClock clock;
  CircuitBreaker breaker({1, 1000ms}, clock.clock());
  breaker.record_failure();
  CHECK_FALSE(breaker.allow());
  clock.advance(1000ms);
  CHECK(breaker.state() == CircuitBreaker::State::half_open);
  CHECK(to_string(breaker.state()) == "half_open");
  CHECK(breaker.allow());       // the probe
  CHECK_FALSE(breaker.allow()); // only one
  breaker.record_success();
  CHECK(breaker.state() == CircuitBreaker::State::closed);
  CHECK(breaker.allow());
  CHECK(breaker.allow());
}

TEST_CASE("a failed probe reopens the circuit for another cool-down", "[core][circuit_breaker]")
{
  FakeClock clock;
  CircuitBreaker breaker({5, 1000ms}, clock.clock());
  for (int i = 0; i < 5; ++i) {
    breaker.record_failure();
  }
  clock.advance(1500ms);
  REQUIRE(breaker.allow());
  breaker.record_failure();
  CHECK(breaker.state() == CircuitBreaker::State::open);
  CHECK_FALSE(breaker.allow());
  clock.advance(999ms);
  CHECK_FALSE(breaker.allow());
  clock.advance(1ms);
  CHECK(breaker.allow());
}

TEST_CASE("a neutral outcome frees the probe slot without closing", "[core][circuit_breaker]")
{
  FakeClock clock;
  CircuitBreaker breaker({1, 100ms}, clock.clock());
  breaker.record_failure();
  clock.advance(100ms);
  REQUIRE(breaker.allow());
  breaker.record_neutral();
  CHECK(breaker.state() == CircuitBreaker::State::half_open);
  CHECK(breaker.allow());
}

TEST_CASE("a pass reports its outcome once, and neutral when dropped unreported",
          "[core][circuit_breaker]")
{
  FakeClock clock;
  CircuitBreaker breaker({1, 1000ms}, clock.clock());
  breaker.admit()->failure();
  REQUIRE(breaker.state() == CircuitBreaker::State::open);
  clock.advance(1000ms);
  {
    auto probe = breaker.admit();
    REQUIRE(probe);
    CHECK_FALSE(breaker.admit());   // one probe at a time
    auto moved = std::move(*probe); // the duty moves; the moved-from pass owes nothing
  }                                 // dropped unreported: the slot is given back
  auto probe = breaker.admit();
  REQUIRE(probe);
  probe->failure();
  probe->success(); // already reported: no second outcome
  CHECK(breaker.state() == CircuitBreaker::State::open);
  clock.advance(1000ms);
  auto next = breaker.admit();
  REQUIRE(next);
  next->success();
  CHECK(breaker.state() == CircuitBreaker::State::closed);
}
