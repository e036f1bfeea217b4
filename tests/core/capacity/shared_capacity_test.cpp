#include "core/capacity/capacity_controller.hpp"
#include "core/capacity/shared_capacity.hpp"
#include "tests/support/eventually.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace exai::core;
using exai::test::deadline_in;
using exai::test::eventually;
using namespace std::chrono_literals;

namespace {

// The lease store in memory: what the Redis scripts do, without expiry
// (these tests never let a lease expire). `down` makes every call fail.
class FakeBackend final : public SharedLeaseBackend {
public:
  void connect() override { check(); }
  Answer acquire(const std::vector<Want>& wants, Millis /*ttl*/, const std::string& lookup) override
  {
    check();
    const std::lock_guard lock(mutex_);
    ++acquires_;
    Answer answer;
    if (!lookup.empty()) {
      lookups_.push_back(lookup);
      if (const auto it = values_.find(lookup); it != values_.end()) {
        answer.found = it->second;
      }
    }
    auto& attempts = answer.attempts;
    for (const auto& want : wants) {
      auto& leases = scopes_[want.key];
      if (leases.size() >= want.limit) {
        attempts.push_back({false, Millis(60000)});
        break;
      }
      leases.insert(want.lease);
      attempts.push_back({true, Millis(0)});
    }
    return answer;
  }
  std::optional<Answer>
  acquire_now(const std::vector<Want>& wants, Millis ttl, const std::string& lookup) override
  {
    if (call_connection_busy) {
      return std::nullopt;
    }
    ++acquires_now;
    return acquire(wants, ttl, lookup);
  }
  void release(const std::vector<Held>& leases, const std::vector<Write>& writes) override
  {
    {
      // A slow store: the releaser waits here until resume().
      std::unique_lock lock(mutex_);
      ++releases_entered_;
      resumed_.wait(lock, [this] { return !paused_; });
    }
    check();
    std::function<void(const std::string&)> listener;
    {
      const std::lock_guard lock(mutex_);
      ++releases_;
      std::size_t bytes = 0;
      for (const auto& write : writes) {
        bytes += write.key.size() + write.value.size();
      }
      batches_.push_back(bytes);
      for (const auto& held : leases) {
        scopes_[held.key].erase(held.lease);
      }
      for (const auto& write : writes) {
        values_[write.key] = write.value;
      }
      listener = listener_;
    }
    if (listener) {
      for (const auto& held : leases) {
        listener(held.key);
      }
    }
  }
  void renew(const std::string& key,
             const std::vector<std::string>& leases,
             Millis /*ttl*/,
             bool re_add) override
  {
    check();
    const std::lock_guard lock(mutex_);
    auto& held = scopes_[key];
    for (const auto& lease : leases) {
      if (re_add || held.count(lease) == 1) {
        held.insert(lease);
      }
    }
    ++renewals_;
  }
  void listen(std::function<void(const std::string& key)> on_release) override
  {
    const std::lock_guard lock(mutex_);
    listener_ = std::move(on_release);
  }
  void stop_listening() noexcept override
  {
    const std::lock_guard lock(mutex_);
    listener_ = nullptr;
  }

  std::size_t held(const std::string& key)
  {
    const std::lock_guard lock(mutex_);
    return scopes_[key].size();
  }
  // Round trips so far: acquire scripts, release scripts.
  std::pair<int, int> trips()
  {
    const std::lock_guard lock(mutex_);
    return {acquires_, releases_};
  }
  // Forgets every lease, as a restarted Redis would.
  void wipe()
  {
    const std::lock_guard lock(mutex_);
    scopes_.clear();
  }
  // Holds every release round trip until resume().
  void pause()
  {
    const std::lock_guard lock(mutex_);
    paused_ = true;
  }
  void resume()
  {
    {
      const std::lock_guard lock(mutex_);
      paused_ = false;
    }
    resumed_.notify_all();
  }
  int releases_entered()
  {
    const std::lock_guard lock(mutex_);
    return releases_entered_;
  }
  // Bytes of writes (keys and values) each release round trip carried.
  std::vector<std::size_t> batches()
  {
    const std::lock_guard lock(mutex_);
    return batches_;
  }
  std::atomic<bool> down{false};
  std::atomic<bool> call_connection_busy{false};
  std::atomic<int> acquires_now{0};

private:
  void check() const
  {
    if (down) {
      throw SharedUnavailable("connection refused");
    }
  }
  std::mutex mutex_;
  std::map<std::string, std::set<std::string>> scopes_;
  std::function<void(const std::string&)> listener_;
  int renewals_ = 0;
  int acquires_ = 0;
  int releases_ = 0;
  int releases_entered_ = 0;
  bool paused_ = false;
  std::condition_variable resumed_;
  std::vector<std::size_t> batches_;

public:
  std::map<std::string, std::string> values_; // guarded by mutex_ (tests read when quiet)
  std::vector<std::string> lookups_;          // guarded by mutex_
};

SharedCapacityOptions
options(SharedFailureMode failure = SharedFailureMode::local)
{
  SharedCapacityOptions o;
  o.daemon_id = "d";
  o.key_prefix = "k:";
  o.failure = failure;
  o.retry_interval = 20ms;
  return o;
}

// A controller whose global and provider scopes are shared through a FakeBackend.
struct SharedScopes {
  FakeBackend backend;
  SharedCapacity shared{backend, options()};
  CapacityController controller;

  SharedScopes(std::size_t global, std::map<std::string, std::size_t, std::less<>> providers)
      : controller(limits_of(shared, global, std::move(providers)))
  {
  }

  // A result another daemon stored: written with a release batch.
  void store_result(const std::string& key, const std::string& value)
  {
    const int before = backend.trips().second;
    shared.write_behind({key, value, 60000ms});
    REQUIRE(eventually([&] { return backend.trips().second == before + 1; }));
  }

  static CapacityLimits limits_of(SharedCapacity& shared,
                                  std::size_t global,
                                  std::map<std::string, std::size_t, std::less<>> providers)
  {
    CapacityLimits limits;
    limits.global = global;
    limits.providers = std::move(providers);
    limits.shared = &shared;
    return limits;
  }
};

} // namespace

TEST_CASE("a shared gate grants up to the shared limit and releases on destruction",
          "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacity shared(backend, options());
  PermitSource& gate = shared.gate("global", 2);
  auto a = gate.acquire_until(deadline_in(5s), {});
  auto b = gate.acquire_until(deadline_in(5s), {});
  REQUIRE(a);
  REQUIRE(b);
  CHECK(backend.held("k:global") == 2);
  CHECK(gate.stats().in_use == 2);
  AcquireStatus status = AcquireStatus::acquired;
  CHECK_FALSE(gate.acquire_until(deadline_in(50ms), {}, &status));
  CHECK(status == AcquireStatus::timed_out);
  a.reset();
  b.reset();
  CHECK(eventually([&] { return backend.held("k:global") == 0; }));
  CHECK(gate.stats().in_use == 0);
  CHECK(shared.stats().leases_acquired == 2);
  CHECK(shared.stats().round_trips >= 4); // 3 acquires; 2 releases in 1 or 2 batches
}

TEST_CASE("waiters of one daemon are granted in arrival order", "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacity shared(backend, options());
  PermitSource& gate = shared.gate("global", 1);
  auto held = gate.acquire_until(deadline_in(5s), {});
  REQUIRE(held);
  std::mutex mutex;
  std::vector<int> order; // guarded by mutex
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      auto p = gate.acquire_until(deadline_in(10s), {});
      REQUIRE(p);
      const std::lock_guard lock(mutex);
      order.push_back(i);
    });
    REQUIRE(eventually([&] { return gate.stats().waiting == static_cast<std::size_t>(i + 1); }));
  }
  held.reset();
  for (auto& t : waiters) {
    t.join();
  }
  CHECK(order == std::vector<int>{0, 1, 2});
}

TEST_CASE("a deadline already passed still gets one try at a shared scope",
          "[core][capacity][shared]")
{
  SharedScopes fixture(1, {{"glm", 1}});
  auto& backend = fixture.backend;
  auto& controller = fixture.controller;
  const CallScopes scopes{"s1", "", "glm"};
  auto first = controller.acquire(scopes, std::chrono::steady_clock::now(), {});
  REQUIRE(std::holds_alternative<CallPermits>(first));
  CHECK(backend.held("k:provider:glm") == 1);
  const CallScopes other{"s2", "", "glm"};
  auto second = controller.acquire(other, std::chrono::steady_clock::now(), {});
  REQUIRE(std::holds_alternative<CapacityRejection>(second));
  CHECK(std::get<CapacityRejection>(second).scope == Scope::global);
  std::get<CallPermits>(first).reset();
  CHECK(eventually([&] { return backend.held("k:global") == 0; }));
  CHECK(controller.snapshot().global.in_use == 0);
}

TEST_CASE("store down: local share, degraded; store back: leases re-added, shared again",
          "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacity shared(backend, options());
  PermitSource& gate = shared.gate("provider:glm", 4);
  auto before = gate.acquire_until(deadline_in(5s), {});
  REQUIRE(before);
  backend.down = true;
  auto local1 = gate.acquire_until(deadline_in(5s), {});
  auto local2 = gate.acquire_until(deadline_in(5s), {});
  REQUIRE(local1);
  REQUIRE(local2);
  CHECK_FALSE(gate.acquire_until(deadline_in(50ms), {})); // ceil(4 x 0.5) = 2 local units
  CHECK_FALSE(shared.stats().shared);
  CHECK(shared.stats().fallbacks == 1);
  CHECK(shared.stats().fallback_permits == 2);
  backend.wipe();
  backend.down = false;
  REQUIRE(eventually([&] { return shared.stats().shared; }));
  CHECK(backend.held("k:provider:glm") == 1); // the lease held across the outage
  local1.reset();
  local2.reset();
  before.reset();
  CHECK(eventually([&] { return backend.held("k:provider:glm") == 0; }));
  CHECK(gate.stats().in_use == 0);
}

TEST_CASE("store down with the refuse policy: calls are refused at once, not at their deadline",
          "[core][capacity][shared]")
{
  FakeBackend backend;
  backend.down = true;
  SharedCapacity shared(backend, options(SharedFailureMode::refuse));
  PermitSource& gate = shared.gate("global", 4);
  CHECK_FALSE(shared.stats().shared);
  AcquireStatus status = AcquireStatus::acquired;
  const auto asked = std::chrono::steady_clock::now();
  CHECK_FALSE(gate.acquire_until(deadline_in(30s), {}, &status));
  CHECK(status == AcquireStatus::refused);
  CHECK(std::chrono::steady_clock::now() - asked < 5s);
  CHECK(gate.stats().in_use == 0);
  CHECK(gate.stats().waiting == 0);

  // Through the controller: the call's rejection says refused, for the global scope.
  CapacityLimits limits;
  limits.providers = {{"glm", 2}};
  limits.shared = &shared;
  CapacityController controller(limits);
  auto outcome = controller.acquire(CallScopes{"s1", "", "glm"}, deadline_in(30s), {});
  REQUIRE(std::holds_alternative<CapacityRejection>(outcome));
  CHECK(std::get<CapacityRejection>(outcome).status == AcquireStatus::refused);
  CHECK(std::get<CapacityRejection>(outcome).scope == Scope::global);
  CHECK(std::chrono::steady_clock::now() - asked < 5s);
}

TEST_CASE(
    "a call takes its global and provider leases in one round trip and gives both back in one",
    "[core][capacity][shared]")
{
  SharedScopes fixture(4, {{"glm", 1}, {"kimi", 2}});
  auto& backend = fixture.backend;
  auto& shared = fixture.shared;
  auto& controller = fixture.controller;
  auto first = controller.acquire(CallScopes{"s1", "", "glm"}, deadline_in(5s), {});
  REQUIRE(std::holds_alternative<CallPermits>(first));
  CHECK(backend.held("k:global") == 1);
  CHECK(backend.held("k:provider:glm") == 1);
  CHECK(backend.trips().first == 1);
  CHECK(shared.stats().leases_acquired == 2);

  // glm full: the second call takes global, then queues for glm in FIFO order
  // behind nobody; it is granted when the first call ends.
  std::optional<AcquireOutcome> second;
  std::thread waiter([&] {
    second.emplace(controller.acquire(CallScopes{"s2", "", "glm"}, deadline_in(10s), {}));
  });
  REQUIRE(eventually([&] { return controller.snapshot().providers.at("glm").waiting == 1; }));
  CHECK(backend.held("k:global") == 2);
  // While a glm call queues, a third glm call's global grant must not take a
  // glm lease ahead of it.
  std::optional<AcquireOutcome> third;
  std::thread later([&] {
    third.emplace(controller.acquire(CallScopes{"s3", "", "glm"}, deadline_in(10s), {}));
  });
  REQUIRE(eventually([&] { return controller.snapshot().providers.at("glm").waiting == 2; }));
  CHECK(backend.held("k:provider:glm") == 1);

  std::get<CallPermits>(first).reset();
  waiter.join();
  REQUIRE(second);
  REQUIRE(std::holds_alternative<CallPermits>(*second));
  CHECK(backend.held("k:provider:glm") == 1);
  std::get<CallPermits>(*second).reset();
  later.join();
  REQUIRE(third);
  REQUIRE(std::holds_alternative<CallPermits>(*third));
  std::get<CallPermits>(*third).reset();
  CHECK(eventually([&] { return backend.held("k:global") + backend.held("k:provider:glm") == 0; }));
  CHECK(controller.snapshot().global.in_use == 0);
  CHECK(controller.snapshot().providers.at("glm").in_use == 0);

  // Sequential calls: one acquire round trip each, and one release round trip
  // (two when the worker wakes between the call's two releases).
  const auto before = backend.trips();
  for (int i = 0; i < 5; ++i) {
    auto call = controller.acquire(CallScopes{"s4", "", "kimi"}, deadline_in(5s), {});
    REQUIRE(std::holds_alternative<CallPermits>(call));
    std::get<CallPermits>(call).reset();
    REQUIRE(eventually([&] { return backend.held("k:provider:kimi") == 0; }));
  }
  const auto after = backend.trips();
  CHECK(after.first - before.first == 5);
  CHECK(after.second - before.second <= 10);
}

TEST_CASE("a call's lookup rides on its global lease's round trip; results ride on releases",
          "[core][capacity][shared]")
{
  SharedScopes fixture(24, {{"glm", 2}});
  auto& backend = fixture.backend;
  auto& controller = fixture.controller;
  fixture.store_result("result:r1", "stored");

  std::mutex mutex;
  std::vector<std::optional<std::string>> answers; // guarded by mutex
  const auto ask = [&](const std::string& key) {
    std::promise<AcquireOutcome> outcome;
    auto future = outcome.get_future();
    controller.acquire_async(
        CapacityController::Request{CallScopes{"s1", "", "glm"}, deadline_in(5s), {}, {}},
        [&outcome](AcquireOutcome o) { outcome.set_value(std::move(o)); },
        CapacityController::Lookup{key, [&](std::optional<std::string> value) {
                                     const std::lock_guard lock(mutex);
                                     answers.push_back(std::move(value));
                                   }});
    return future.get();
  };
  const auto trips_before = backend.trips().first;
  auto first = ask("result:r1");
  auto second = ask("result:absent");
  REQUIRE(std::holds_alternative<CallPermits>(first));
  REQUIRE(std::holds_alternative<CallPermits>(second));
  CHECK(backend.trips().first - trips_before == 2); // no round trip of their own
  {
    const std::lock_guard lock(mutex);
    REQUIRE(answers.size() == 2);
    CHECK(answers[0] == std::optional<std::string>("stored"));
    CHECK_FALSE(answers[1]);
  }
  std::get<CallPermits>(first).reset();
  std::get<CallPermits>(second).reset();
  CHECK(eventually([&] { return backend.held("k:global") == 0; }));

  // The store down: the local share grants, and the lookup is answered "nothing".
  backend.down = true;
  auto local = ask("result:r1");
  REQUIRE(std::holds_alternative<CallPermits>(local));
  {
    const std::lock_guard lock(mutex);
    REQUIRE(answers.size() == 3);
    CHECK_FALSE(answers[2]);
  }
}

TEST_CASE("a call thread takes its leases ahead in one round trip, with its lookup",
          "[core][capacity][shared]")
{
  SharedScopes fixture(4, {{"glm", 2}});
  auto& backend = fixture.backend;
  auto& shared = fixture.shared;
  auto& controller = fixture.controller;
  fixture.store_result("result:r1", "stored");
  const CallScopes scopes{"s1", "", "glm"};

  std::optional<std::string> answer;
  bool answered = false;
  CapacityController::Lookup lookup{"result:r1", [&](std::optional<std::string> value) {
                                      answered = true;
                                      answer = std::move(value);
                                    }};
  std::optional<AcquireOutcome> outcome;
  {
    const auto ahead = controller.prefetch(scopes, lookup);
    CHECK(ahead.taken());
    CHECK(answered); // on this thread, before the acquisition starts
    CHECK(answer == std::optional<std::string>("stored"));
    CHECK_FALSE(lookup.on_answer);
    controller.acquire_async(
        CapacityController::Request{scopes, deadline_in(5s), {}, {}},
        [&](AcquireOutcome o) { outcome.emplace(std::move(o)); },
        std::move(lookup));
  }
  // Granted at once from the parked leases: no round trip by the worker.
  REQUIRE(outcome);
  REQUIRE(std::holds_alternative<CallPermits>(*outcome));
  CHECK(backend.trips().first == 1);
  CHECK(backend.acquires_now == 1);
  CHECK(backend.held("k:global") == 1);
  CHECK(backend.held("k:provider:glm") == 1);
  CHECK(shared.stats().leases_prefetched == 2);
  std::get<CallPermits>(*outcome).reset();
  CHECK(eventually([&] { return backend.held("k:global") + backend.held("k:provider:glm") == 0; }));

  // Leases nobody asked for go back when the prefetch ends.
  {
    CapacityController::Lookup none;
    const auto ahead = controller.prefetch(scopes, none);
    CHECK(ahead.taken());
    CHECK(backend.held("k:global") == 1);
  }
  CHECK(eventually([&] { return backend.held("k:global") + backend.held("k:provider:glm") == 0; }));
  CHECK(controller.snapshot().global.in_use == 0);
  CHECK(controller.snapshot().providers.at("glm").in_use == 0);
}

TEST_CASE("nothing is taken ahead past a waiter, on a busy connection, or while degraded",
          "[core][capacity][shared]")
{
  SharedScopes fixture(1, {{"glm", 1}});
  auto& backend = fixture.backend;
  auto& shared = fixture.shared;
  auto& controller = fixture.controller;
  const CallScopes scopes{"s1", "", "glm"};
  const auto untouched = [&](CapacityController::Lookup& lookup) {
    const int before = backend.acquires_now;
    const auto ahead = controller.prefetch(scopes, lookup);
    CHECK_FALSE(ahead.taken());
    CHECK(backend.acquires_now == before);
    CHECK(lookup.on_answer); // still the acquisition's to answer
  };
  CapacityController::Lookup lookup{"result:x", [](std::optional<std::string>) {}};

  // The call connection is in use by another call thread.
  backend.call_connection_busy = true;
  untouched(lookup);
  backend.call_connection_busy = false;

  // A waiter of this daemon is queued on global: a call thread must not overtake it.
  auto held = controller.acquire(scopes, deadline_in(5s), {});
  REQUIRE(std::holds_alternative<CallPermits>(held));
  std::optional<AcquireOutcome> queued;
  std::thread waiter([&] { queued.emplace(controller.acquire(scopes, deadline_in(10s), {})); });
  REQUIRE(eventually([&] { return controller.snapshot().global.waiting == 1; }));
  untouched(lookup);
  std::get<CallPermits>(held).reset();
  waiter.join();
  REQUIRE(queued);
  REQUIRE(std::holds_alternative<CallPermits>(*queued));
  std::get<CallPermits>(*queued).reset();
  CHECK(eventually([&] { return backend.held("k:global") == 0; }));

  // The store unreachable: the gates answer from their local shares.
  backend.down = true;
  {
    auto degraded = controller.acquire(scopes, deadline_in(5s), {});
    REQUIRE(std::holds_alternative<CallPermits>(degraded));
  }
  REQUIRE_FALSE(shared.stats().shared);
  untouched(lookup);
}

TEST_CASE("writes waiting for a slow store are bounded in bytes and go out in bounded batches",
          "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacityOptions o = options();
  o.write_queue_max_bytes = 10000;
  o.write_batch_max_bytes = 3000;
  SharedCapacity shared(backend, o);
  const std::string value(990, 'v'); // with its 10-byte key, 1000 bytes a write
  const auto key = [](int i) {
    std::string k = "k:" + std::to_string(i);
    return k + std::string(10 - k.size(), '_');
  };
  backend.pause();
  shared.write_behind({key(0), value, 60000ms});
  // The releaser now waits inside the store with the first write in hand.
  REQUIRE(eventually([&] { return backend.releases_entered() == 1; }));
  for (int i = 1; i <= 25; ++i) {
    shared.write_behind({key(i), value, 60000ms});
  }
  // Ten more fit in 10,000 bytes; the other fifteen were dropped and counted.
  const SharedCapacityStats held = shared.stats();
  CHECK(held.write_queue_bytes == 10000);
  CHECK(held.writes_dropped == 15);
  backend.resume();
  REQUIRE(eventually([&] { return shared.stats().write_queue_bytes == 0; }));
  REQUIRE(eventually([&] { return backend.batches().size() == 5; }));
  // The backlog went out three writes (3,000 bytes) at a time, oldest first.
  CHECK(backend.batches() == std::vector<std::size_t>{1000, 3000, 3000, 3000, 1000});
  std::set<std::string> stored;
  for (const auto& [k, v] : backend.values_) {
    stored.insert(k);
  }
  std::set<std::string> expected;
  for (int i = 0; i <= 10; ++i) {
    expected.insert(key(i));
  }
  CHECK(stored == expected);
  // Room again: the next write is queued, not dropped.
  shared.write_behind({key(99), value, 60000ms});
  REQUIRE(eventually([&] { return backend.batches().size() == 6; }));
  CHECK(shared.stats().writes_dropped == 15);
}

TEST_CASE("a write larger than a batch still goes out, alone", "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacityOptions o = options();
  o.write_batch_max_bytes = 100;
  SharedCapacity shared(backend, o);
  shared.write_behind({"big", std::string(5000, 'b'), 60000ms});
  REQUIRE(eventually([&] { return backend.batches().size() == 1; }));
  CHECK(backend.batches().front() == 5003);
  CHECK(shared.stats().writes_dropped == 0);
}
