#include "core/capacity/capacity_controller.hpp"
#include "core/error.hpp"
#include "tests/core/capacity/capacity_checks.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace exai::core;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

CapacityLimits
limits(std::size_t global, std::size_t session, std::size_t conversation, std::size_t kimi)
{
  CapacityLimits l;
  l.global = global;
  l.session = session;
  l.conversation = conversation;
  l.providers = {{"kimi", kimi}, {"glm", 1}};
  return l;
}

auto
soon()
{
  return CapacityController::Clock::now() + 20ms;
}

CallPermits
admitted(std::variant<CallPermits, CapacityRejection> result)
{
  REQUIRE(std::holds_alternative<CallPermits>(result));
  return std::move(std::get<CallPermits>(result));
}

CapacityRejection
rejected(const std::variant<CallPermits, CapacityRejection>& result)
{
  REQUIRE(std::holds_alternative<CapacityRejection>(result));
  return std::get<CapacityRejection>(result);
}

} // namespace

TEST_CASE("a call takes one permit in each scope it needs", "[core][capacity_controller]")
{
  CapacityController c(limits(4, 4, 1, 2));
  auto permits = admitted(c.acquire({"s1", "conv", "kimi"}, soon(), {}));
  CHECK(permits.held() == 4);
  auto snap = c.snapshot();
  CHECK(snap.global.in_use == 1);
  CHECK(snap.providers.at("kimi").in_use == 1);
  CHECK(snap.providers.at("glm").in_use == 0);
  CHECK(snap.sessions.in_use == 1);
  CHECK(snap.conversations.in_use == 1);
  auto no_model = admitted(c.acquire({"s1", "", ""}, soon(), {}));
  CHECK(no_model.held() == 2); // session + global: no conversation, no provider
  permits.reset();
  no_model.reset();
  check_all_zero(c);
}

TEST_CASE("a full scope is named in the rejection and nothing stays held",
          "[core][capacity_controller]")
{
  SECTION("conversation")
  {
    CapacityController c(limits(4, 4, 1, 2));
    auto first = admitted(c.acquire({"s1", "conv", "kimi"}, soon(), {}));
    const auto r = rejected(c.acquire({"s2", "conv", "kimi"}, soon(), {}));
    CHECK(r.scope == Scope::conversation);
    CHECK(r.status == AcquireStatus::timed_out);
    CHECK(c.snapshot().global.in_use == 1);
    CHECK(c.snapshot().session_limiters == 1); // s2's limiter is gone again
  }
  SECTION("session")
  {
    CapacityController c(limits(4, 1, 1, 2));
    auto first = admitted(c.acquire({"s1", "", "kimi"}, soon(), {}));
    const auto r = rejected(c.acquire({"s1", "other-conv", "kimi"}, soon(), {}));
    CHECK(r.scope == Scope::session);
    CHECK(c.snapshot().conversations.in_use == 0);
    CHECK(c.snapshot().conversation_limiters == 0);
  }
  SECTION("global")
  {
    CapacityController c(limits(1, 4, 1, 2));
    auto first = admitted(c.acquire({"s1", "", ""}, soon(), {}));
    const auto r = rejected(c.acquire({"s2", "c2", "kimi"}, soon(), {}));
    CHECK(r.scope == Scope::global);
    const auto snap = c.snapshot();
    CHECK(snap.sessions.in_use == 1);
    CHECK(snap.conversation_limiters == 0);
  }
  SECTION("provider")
  {
    CapacityController c(limits(4, 4, 1, 1));
    auto first = admitted(c.acquire({"s1", "", "kimi"}, soon(), {}));
    const auto r = rejected(c.acquire({"s2", "c2", "kimi"}, soon(), {}));
    CHECK(r.scope == Scope::provider);
    CHECK(r.provider == "kimi");
    const auto snap = c.snapshot();
    CHECK(snap.global.in_use == 1);
    CHECK(snap.sessions.in_use == 1);
    CHECK(snap.conversation_limiters == 0);
    // The other provider is unaffected.
    CHECK(std::holds_alternative<CallPermits>(c.acquire({"s2", "", "glm"}, soon(), {})));
  }
}

TEST_CASE("a past deadline means try once", "[core][capacity_controller]")
{
  CapacityController c(limits(1, 4, 1, 2));
  auto first = admitted(c.acquire({"s1", "", ""}, soon(), {}));
  bool waited = false;
  const auto start = CapacityController::Clock::now();
  const auto r = rejected(c.acquire(
      {"s2", "", ""}, CapacityController::Clock::now(), {}, [&](Scope, const std::string&) {
        waited = true;
      }));
  CHECK(r.scope == Scope::global);
  CHECK_FALSE(waited);
  CHECK(CapacityController::Clock::now() - start < 1s);
}

TEST_CASE("waiting is announced with the full scope and ends when capacity frees",
          "[core][capacity_controller]")
{
  CapacityController c(limits(4, 4, 1, 1));
  auto first = std::make_optional(admitted(c.acquire({"s1", "", "kimi"}, soon(), {})));
  std::atomic<int> announced{-1};
  std::atomic<bool> admitted_second{false};
  std::thread second([&] {
    auto result =
        c.acquire({"s2", "", "kimi"},
                  CapacityController::Clock::now() + 10s,
                  {},
                  [&](Scope scope, const std::string&) { announced = static_cast<int>(scope); });
    admitted_second = std::holds_alternative<CallPermits>(result);
  });
  const auto deadline = CapacityController::Clock::now() + 5s;
  while (c.snapshot().providers.at("kimi").waiting != 1 &&
         CapacityController::Clock::now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(c.snapshot().providers.at("kimi").waiting == 1);
  first.reset();
  second.join();
  CHECK(announced == static_cast<int>(Scope::provider));
  CHECK(admitted_second);
  check_all_zero(c);
}

TEST_CASE("a cancelled acquisition releases what it took", "[core][capacity_controller]")
{
  CapacityController c(limits(1, 4, 1, 2));
  auto first = admitted(c.acquire({"s1", "", ""}, soon(), {}));
  std::stop_source stop;
  std::atomic<bool> done{false};
  CapacityRejection rejection;
  std::thread waiter([&] {
    auto result =
        c.acquire({"s2", "conv", "glm"}, CapacityController::Clock::now() + 30s, stop.get_token());
    if (std::holds_alternative<CapacityRejection>(result)) {
      rejection = std::get<CapacityRejection>(result);
    }
    done = true;
  });
  const auto deadline = CapacityController::Clock::now() + 5s;
  while (c.snapshot().global.waiting != 1 && CapacityController::Clock::now() < deadline) {
    std::this_thread::yield();
  }
  stop.request_stop();
  waiter.join();
  CHECK(done);
  CHECK(rejection.scope == Scope::global);
  CHECK(rejection.status == AcquireStatus::cancelled);
  const auto snap = c.snapshot();
  CHECK(snap.conversation_limiters == 0);
  CHECK(snap.sessions.in_use == 1); // s1's only
}

TEST_CASE("per-session limiters live only while used", "[core][capacity_controller]")
{
  CapacityController c(limits(8, 2, 1, 2));
  {
    auto a = admitted(c.acquire({"s1", "c1", ""}, soon(), {}));
    auto b = admitted(c.acquire({"s2", "c2", ""}, soon(), {}));
    CHECK(c.snapshot().session_limiters == 2);
    CHECK(c.snapshot().conversation_limiters == 2);
    a.reset();
    CHECK(c.snapshot().session_limiters == 1);
    CHECK(c.snapshot().conversation_limiters == 1);
  }
  check_all_zero(c);
}

TEST_CASE("an unknown provider is a bug, not a capacity outcome", "[core][capacity_controller]")
{
  CapacityController c(limits(8, 2, 1, 2));
  CHECK_THROWS_AS(c.acquire({"s1", "", "nope"}, soon(), {}), exai::core::Error);
  check_all_zero(c);
}

TEST_CASE("moving call permits transfers every permit", "[core][capacity_controller]")
{
  CapacityController c(limits(1, 1, 1, 1));
  auto permits = admitted(c.acquire({"s1", "c1", "kimi"}, soon(), {}));
  CallPermits moved = std::move(permits);
  CHECK(permits.held() == 0); // NOLINT(bugprone-use-after-move)
  CHECK(moved.held() == 4);
  moved.reset();
  check_all_zero(c);
}

namespace {

// Outcomes of asynchronous acquisitions, in the order they arrived.
struct AsyncLog {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<int, exai::core::AcquireOutcome>> outcomes; // guarded by mutex

  CapacityController::Done done(int tag)
  {
    return [this, tag](exai::core::AcquireOutcome outcome) {
      const std::lock_guard lock(mutex);
      outcomes.emplace_back(tag, std::move(outcome));
      changed.notify_all();
    };
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds limit = 5s)
  {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, limit, [&] { return outcomes.size() >= n; });
  }
};

} // namespace

TEST_CASE("queued acquisitions hold no thread and are granted in FIFO order",
          "[core][capacity_controller]")
{
  CapacityController c(limits(1000, 1000, 1, 1));
  auto first = std::make_optional(admitted(c.acquire({"s0", "", "kimi"}, soon(), {})));
  AsyncLog log;
  constexpr int kWaiters = 500;
  for (int i = 1; i <= kWaiters; ++i) {
    c.acquire_async(
        {{"s" + std::to_string(i % 7), "", "kimi"}, CapacityController::Clock::now() + 30s, {}, {}},
        log.done(i));
  }
  // Every call returned at once: 500 waiters, no thread each.
  CHECK(c.snapshot().providers.at("kimi").waiting == kWaiters);
  first.reset();
  for (int i = 1; i <= kWaiters; ++i) {
    REQUIRE(log.wait_for(static_cast<std::size_t>(i)));
    std::optional<CallPermits> permits;
    {
      const std::lock_guard lock(log.mutex);
      auto& [tag, outcome] = log.outcomes.back();
      CHECK(tag == i); // oldest first
      REQUIRE(std::holds_alternative<CallPermits>(outcome));
      permits.emplace(std::move(std::get<CallPermits>(outcome)));
    }
    permits.reset(); // hands the unit to the next waiter
  }
  check_all_zero(c);
}

TEST_CASE("a queued acquisition is refused at its deadline and holds nothing",
          "[core][capacity_controller]")
{
  CapacityController c(limits(4, 4, 1, 1));
  auto first = admitted(c.acquire({"s1", "", "kimi"}, soon(), {}));
  AsyncLog log;
  std::atomic<int> announced{-1};
  const auto start = CapacityController::Clock::now();
  c.acquire_async({{"s2", "conv", "kimi"},
                   start + 100ms,
                   {},
                   [&](Scope scope, const std::string&) { announced = static_cast<int>(scope); }},
                  log.done(1));
  REQUIRE(log.wait_for(1));
  CHECK(CapacityController::Clock::now() - start >= 100ms);
  CHECK(announced == static_cast<int>(Scope::provider));
  {
    const std::lock_guard lock(log.mutex);
    const auto& r = std::get<CapacityRejection>(log.outcomes.front().second);
    CHECK(r.scope == Scope::provider);
    CHECK(r.provider == "kimi");
    CHECK(r.status == AcquireStatus::timed_out);
  }
  const auto snap = c.snapshot();
  CHECK(snap.conversation_limiters == 0);
  CHECK(snap.providers.at("kimi").waiting == 0);
  CHECK(snap.sessions.in_use == 1); // s1's only
}

TEST_CASE("cancelling a queued acquisition ends it at once and releases what it took",
          "[core][capacity_controller]")
{
  CapacityController c(limits(4, 4, 1, 1));
  auto first = admitted(c.acquire({"s1", "", "glm"}, soon(), {}));
  AsyncLog log;
  std::stop_source stop;
  c.acquire_async(
      {{"s2", "conv", "glm"}, CapacityController::Clock::now() + 30s, stop.get_token(), {}},
      log.done(1));
  CHECK(c.snapshot().providers.at("glm").waiting == 1);
  stop.request_stop();
  REQUIRE(log.wait_for(1, 1s));
  {
    const std::lock_guard lock(log.mutex);
    CHECK(std::get<CapacityRejection>(log.outcomes.front().second).status ==
          AcquireStatus::cancelled);
  }
  CHECK(c.snapshot().conversation_limiters == 0);
  // A stop requested before the start is reported as cancelled at once.
  AsyncLog again;
  c.acquire_async({{"s3", "", ""}, CapacityController::Clock::now() + 30s, stop.get_token(), {}},
                  again.done(2));
  REQUIRE(again.wait_for(1, 1s));
  {
    const std::lock_guard lock(again.mutex);
    CHECK(std::holds_alternative<CapacityRejection>(again.outcomes.front().second));
  }
}
