#include "core/util/scheduler.hpp"
#include "core/util/thread_pool.hpp"
#include "tests/support/eventually.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

using exai::core::Scheduler;
using exai::core::ThreadPool;
using exai::test::eventually;
using namespace std::chrono_literals;

TEST_CASE("a one-shot task runs once, not before its time", "[core][scheduler]")
{
  Scheduler scheduler;
  std::atomic<int> runs{0};
  const auto start = Scheduler::Clock::now();
  std::atomic<Scheduler::Clock::duration::rep> ran_after{0};
  auto handle = scheduler.at(start + 30ms, [&] {
    ran_after = (Scheduler::Clock::now() - start).count();
    ++runs;
  });
  REQUIRE(eventually([&] { return runs == 1; }));
  CHECK(Scheduler::Clock::duration(ran_after.load()) >= 30ms);
  CHECK(scheduler.size() == 0);
}

TEST_CASE("a periodic task repeats until its handle goes", "[core][scheduler]")
{
  Scheduler scheduler;
  std::atomic<int> runs{0};
  {
    auto handle = scheduler.every(5ms, [&] { ++runs; });
    REQUIRE(eventually([&] { return runs >= 3; }));
  }
  const int after_cancel = runs;
  CHECK(scheduler.size() == 0);
  // Tasks run in time order on one thread, so once a marker due several
  // periods later has run, every period that could have fired has had its turn.
  std::atomic<bool> marker{false};
  auto later = scheduler.at(Scheduler::Clock::now() + 30ms, [&] { marker = true; });
  REQUIRE(eventually([&] { return marker.load(); }));
  CHECK(runs == after_cancel);
}

TEST_CASE("cancelling waits for a task that is running", "[core][scheduler]")
{
  Scheduler scheduler;
  std::atomic<bool> inside{false};
  std::atomic<bool> finished{false};
  std::atomic<bool> release{false};
  auto handle = scheduler.at(Scheduler::Clock::now(), [&] {
    inside = true;
    while (!release) {
      std::this_thread::yield();
    }
    finished = true;
  });
  REQUIRE(eventually([&] { return inside.load(); }));
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    release = true;
  });
  handle.reset(); // must not return while the task still runs
  CHECK(finished);
  releaser.join();
}

TEST_CASE("an abandoned handle does not wait for its running task, and a pending one never runs",
          "[core][scheduler]")
{
  Scheduler scheduler;
  // The task needs a lock the abandoning thread holds (the MCP grace timer's
  // cancel needs the engine's call lock, held while the result is answered):
  // waiting for it would deadlock.
  std::mutex held;
  std::atomic<bool> inside{false};
  std::atomic<bool> finished{false};
  Scheduler::Handle running;
  {
    // Held before the task is scheduled, so the task always waits for it.
    const std::lock_guard lock(held);
    running = scheduler.at(Scheduler::Clock::now(), [&] {
      inside = true;
      const std::lock_guard task_lock(held);
      finished = true;
    });
    REQUIRE(eventually([&] { return inside.load(); }));
    running.abandon(); // returns with the task blocked on `held`
    CHECK_FALSE(running);
    CHECK_FALSE(finished);
  }
  REQUIRE(eventually([&] { return finished.load(); }));
  std::atomic<bool> ran{false};
  auto pending = scheduler.at(Scheduler::Clock::now() + 20ms, [&] { ran = true; });
  pending.abandon();
  CHECK(scheduler.size() == 0); // removed at once, so it never runs
  CHECK_FALSE(ran);
}

TEST_CASE("a task may cancel itself without deadlock", "[core][scheduler]")
{
  Scheduler scheduler;
  std::atomic<int> runs{0};
  Scheduler::Handle handle;
  std::mutex m;
  {
    const std::lock_guard lock(m);
    handle = scheduler.every(1ms, [&] {
      ++runs;
      const std::lock_guard inner(m);
      handle.reset();
    });
  }
  REQUIRE(eventually([&] { return scheduler.size() == 0; }));
  CHECK(runs == 1);
}

TEST_CASE("the pool runs every job and never exceeds its thread limit", "[core][thread_pool]")
{
  std::atomic<int> done{0};
  std::atomic<int> active{0};
  std::atomic<int> peak{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 50; ++i) {
      REQUIRE(pool.post([&] {
        const int now = ++active;
        int seen = peak;
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(1ms);
        --active;
        ++done;
      }));
    }
    CHECK(pool.threads() <= 3);
  } // the destructor runs what is queued, then joins
  CHECK(done == 50);
  CHECK(peak <= 3);
}

TEST_CASE("a job that throws is logged and its thread goes on with the next", "[core][thread_pool]")
{
  std::atomic<bool> after{false};
  {
    ThreadPool pool(1);
    REQUIRE(pool.post([] { throw std::runtime_error("a bug in a job"); }));
    REQUIRE(pool.post([] { throw 42; }));
    REQUIRE(pool.post([&] { after = true; }));
    REQUIRE(eventually([&] { return after.load(); }));
    CHECK(pool.threads() == 1);
  }
  CHECK(after);
}

namespace {

// Captured by a job: when released, asks the pool something from another
// thread, which takes the pool's lock. Releasing it under that lock (what a
// call captured, e.g. its permits, may post the next call to the same pool)
// keeps the question unanswered.
struct LockProbe {
  ThreadPool& pool;
  std::shared_ptr<std::atomic<bool>> answered;
  std::shared_ptr<std::atomic<bool>> blocked;

  ~LockProbe()
  {
    std::thread([&p = pool, a = answered] {
      (void)p.queued();
      *a = true;
    }).detach();
    *blocked = !eventually([&] { return answered->load(); }, 2s);
  }
};

} // namespace

TEST_CASE("what a job captured is released outside the pool's lock", "[core][thread_pool]")
{
  auto answered = std::make_shared<std::atomic<bool>>(false);
  auto blocked = std::make_shared<std::atomic<bool>>(false);
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1);
    std::shared_ptr<LockProbe> probe(new LockProbe{pool, answered, blocked});
    REQUIRE(pool.post([probe = std::move(probe), &ran] { ++ran; }));
    REQUIRE(eventually([&] { return ran == 1; }));
    // The pool outlives the probe's question either way.
    REQUIRE(eventually([&] { return answered->load(); }, 10s));
  }
  CHECK_FALSE(*blocked);
}
