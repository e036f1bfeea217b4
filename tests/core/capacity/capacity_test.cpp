#include "core/capacity/capacity.hpp"
#include "core/error.hpp"
#include "tests/support/eventually.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace exai::core;
using exai::test::deadline_in;
using namespace std::chrono_literals;

namespace {

// Waits (bounded) until `limiter` reports `n` waiters.
bool
wait_for_waiters(const CapacityLimiter& limiter, std::size_t n)
{
  return exai::test::eventually([&] { return limiter.stats().waiting == n; });
}

} // namespace

TEST_CASE("a limiter hands out at most its capacity and counts use", "[core][capacity]")
{
  CapacityLimiter limiter("t", 2);
  auto a = limiter.try_acquire();
  auto b = limiter.try_acquire();
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(limiter.try_acquire());
  CHECK(limiter.stats().in_use == 2);
  CHECK(limiter.stats().capacity == 2);
  a.reset();
  CHECK(limiter.stats().in_use == 1);
  CHECK(limiter.try_acquire());
  CHECK(limiter.stats().in_use == 1);
}

TEST_CASE("a zero capacity is a configuration error", "[core][capacity]")
{
  CHECK_THROWS_AS(CapacityLimiter("t", 0), exai::core::Error);
}

TEST_CASE("a permit is move-only and releases exactly once", "[core][capacity]")
{
  static_assert(!std::is_copy_constructible_v<Permit>);
  static_assert(std::is_nothrow_move_constructible_v<Permit>);
  CapacityLimiter limiter("t", 1);
  std::optional<Permit> held = limiter.try_acquire();
  REQUIRE(held);
  Permit moved = std::move(*held);
  CHECK_FALSE(*held); // NOLINT(bugprone-use-after-move): the moved-from state is the point
  CHECK(moved);
  held.reset();
  CHECK(limiter.stats().in_use == 1);
  moved.reset();
  moved.reset();
  CHECK(limiter.stats().in_use == 0);
}

TEST_CASE("move-assigning a permit releases the unit it held before", "[core][capacity]")
{
  CapacityLimiter first("a", 1);
  CapacityLimiter second("b", 1);
  auto a = first.try_acquire();
  auto b = second.try_acquire();
  REQUIRE(a);
  REQUIRE(b);
  *a = std::move(*b);
  CHECK(first.stats().in_use == 0);
  CHECK(second.stats().in_use == 1);
  a.reset();
  CHECK(second.stats().in_use == 0);
}

TEST_CASE("a wait times out at its deadline with nothing held", "[core][capacity]")
{
  CapacityLimiter limiter("t", 1);
  auto held = limiter.try_acquire();
  AcquireStatus status = AcquireStatus::acquired;
  const auto start = CapacityLimiter::Clock::now();
  auto permit = limiter.acquire_until(deadline_in(50ms), {}, &status);
  const auto waited = CapacityLimiter::Clock::now() - start;
  CHECK_FALSE(permit);
  CHECK(status == AcquireStatus::timed_out);
  CHECK(waited >= 50ms);
  CHECK(waited < 2s);
  CHECK(limiter.stats().waiting == 0);
  CHECK(limiter.stats().in_use == 1);
}

TEST_CASE("a waiter gets the unit released by another thread", "[core][capacity]")
{
  CapacityLimiter limiter("t", 1);
  auto held = limiter.try_acquire();
  std::atomic<bool> got{false};
  std::thread waiter([&] { got = limiter.acquire_until(deadline_in(10s), {}).has_value(); });
  REQUIRE(wait_for_waiters(limiter, 1));
  held.reset();
  waiter.join();
  CHECK(got);
  CHECK(limiter.stats().in_use == 0);
}

TEST_CASE("a cancelled waiter returns at once with cancelled", "[core][capacity]")
{
  CapacityLimiter limiter("t", 1);
  auto held = limiter.try_acquire();
  std::stop_source stop;
  std::atomic<int> status{-1};
  std::chrono::steady_clock::duration returned_after{};
  std::chrono::steady_clock::time_point cancelled_at;
  std::thread waiter([&] {
    AcquireStatus s = AcquireStatus::acquired;
    const auto permit = limiter.acquire_until(deadline_in(30s), stop.get_token(), &s);
    returned_after = std::chrono::steady_clock::now() - cancelled_at;
    status = permit ? 99 : static_cast<int>(s);
  });
  REQUIRE(wait_for_waiters(limiter, 1));
  cancelled_at = std::chrono::steady_clock::now();
  stop.request_stop();
  waiter.join();
  CHECK(status == static_cast<int>(AcquireStatus::cancelled));
  CHECK(returned_after < 100ms);
  CHECK(limiter.stats().waiting == 0);
  CHECK(limiter.stats().in_use == 1);
}

TEST_CASE("an already cancelled acquisition takes nothing", "[core][capacity]")
{
  CapacityLimiter limiter("t", 1);
  std::stop_source stop;
  stop.request_stop();
  AcquireStatus status = AcquireStatus::acquired;
  CHECK_FALSE(limiter.acquire_until(deadline_in(1s), stop.get_token(), &status));
  CHECK(status == AcquireStatus::cancelled);
  CHECK(limiter.stats().in_use == 0);
}

TEST_CASE("queued waiters are served in FIFO order", "[core][capacity]")
{
  CapacityLimiter limiter("t", 1);
  auto held = limiter.try_acquire();
  constexpr int kWaiters = 8;
  std::vector<int> order;
  std::mutex order_mutex;
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      auto permit = limiter.acquire_until(deadline_in(30s), {});
      if (permit) {
        const std::lock_guard lock(order_mutex);
        order.push_back(i);
      }
    });
    // Enqueue strictly one after another so arrival order is known.
    REQUIRE(wait_for_waiters(limiter, static_cast<std::size_t>(i + 1)));
  }
  // A newcomer must not overtake the queue even at the moment of release.
  CHECK_FALSE(limiter.try_acquire());
  held.reset();
  for (auto& t : threads) {
    t.join();
  }
  std::vector<int> expected(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    expected[static_cast<std::size_t>(i)] = i;
  }
  CHECK(order == expected);
  CHECK(limiter.stats().in_use == 0);
  CHECK(limiter.stats().waiting == 0);
}

TEST_CASE("a timed-out waiter leaves the queue without blocking those behind it",
          "[core][capacity]")
{
  CapacityLimiter limiter("t", 1);
  auto held = limiter.try_acquire();
  std::atomic<bool> second_got{false};
  std::thread first([&] { (void)limiter.acquire_until(deadline_in(30ms), {}); });
  REQUIRE(wait_for_waiters(limiter, 1));
  std::thread second([&] { second_got = limiter.acquire_until(deadline_in(30s), {}).has_value(); });
  first.join();
  REQUIRE(wait_for_waiters(limiter, 1));
  held.reset();
  second.join();
  CHECK(second_got);
  CHECK(limiter.idle());
}
