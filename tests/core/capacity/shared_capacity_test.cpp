#include "core/capacity/capacity_controller.hpp"
#include "core/capacity/shared_capacity.hpp"
#include "tests/support/eventually.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace exai::core;
using exai::test::eventually;
using namespace std::chrono_literals;

namespace {

// The lease store in memory: what the Redis scripts do, without expiry
// (these tests never let a lease expire). `down` makes every call fail.
class FakeBackend final : public SharedLeaseBackend {
public:
  void connect() override { check(); }
  Attempt acquire(const std::string& key,
                  std::size_t limit,
                  const std::string& lease,
                  Millis /*ttl*/) override
  {
    check();
    const std::lock_guard lock(mutex_);
    auto& leases = scopes_[key];
    if (leases.size() < limit) {
      leases.insert(lease);
      return {true, Millis(0)};
    }
    return {false, Millis(60000)};
  }
  void release(const std::string& key, const std::string& lease) override
  {
    check();
    std::function<void(const std::string&)> listener;
    {
      const std::lock_guard lock(mutex_);
      scopes_[key].erase(lease);
      listener = listener_;
    }
    if (listener) {
      listener(key);
    }
  }
  void
  renew(const std::string& key, const std::vector<std::string>& leases, Millis /*ttl*/) override
  {
    check();
    const std::lock_guard lock(mutex_);
    scopes_[key].insert(leases.begin(), leases.end());
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
  // Forgets every lease, as a restarted Redis would.
  void wipe()
  {
    const std::lock_guard lock(mutex_);
    scopes_.clear();
  }
  std::atomic<bool> down{false};

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

auto
in(std::chrono::milliseconds ms)
{
  return std::chrono::steady_clock::now() + ms;
}

} // namespace

TEST_CASE("a shared gate grants up to the shared limit and releases on destruction",
          "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacity shared(backend, options());
  PermitSource& gate = shared.gate("global", 2);
  auto a = gate.acquire_until(in(5s), {});
  auto b = gate.acquire_until(in(5s), {});
  REQUIRE(a);
  REQUIRE(b);
  CHECK(backend.held("k:global") == 2);
  CHECK(gate.stats().in_use == 2);
  AcquireStatus status = AcquireStatus::acquired;
  CHECK_FALSE(gate.acquire_until(in(50ms), {}, &status));
  CHECK(status == AcquireStatus::timed_out);
  a.reset();
  b.reset();
  CHECK(eventually([&] { return backend.held("k:global") == 0; }));
  CHECK(gate.stats().in_use == 0);
  CHECK(shared.stats().leases_acquired == 2);
  CHECK(shared.stats().round_trips >= 5); // 3 acquires, 2 releases
}

TEST_CASE("waiters of one daemon are granted in arrival order", "[core][capacity][shared]")
{
  FakeBackend backend;
  SharedCapacity shared(backend, options());
  PermitSource& gate = shared.gate("global", 1);
  auto held = gate.acquire_until(in(5s), {});
  REQUIRE(held);
  std::mutex mutex;
  std::vector<int> order; // guarded by mutex
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      auto p = gate.acquire_until(in(10s), {});
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
  FakeBackend backend;
  SharedCapacity shared(backend, options());
  CapacityLimits limits;
  limits.global = 1;
  limits.providers = {{"glm", 1}};
  limits.shared = &shared;
  CapacityController controller(limits);
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
  auto before = gate.acquire_until(in(5s), {});
  REQUIRE(before);
  backend.down = true;
  auto local1 = gate.acquire_until(in(5s), {});
  auto local2 = gate.acquire_until(in(5s), {});
  REQUIRE(local1);
  REQUIRE(local2);
  CHECK_FALSE(gate.acquire_until(in(50ms), {})); // ceil(4 x 0.5) = 2 local units
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

TEST_CASE("store down with the refuse policy: nothing is granted", "[core][capacity][shared]")
{
  FakeBackend backend;
  backend.down = true;
  SharedCapacity shared(backend, options(SharedFailureMode::refuse));
  PermitSource& gate = shared.gate("global", 4);
  CHECK_FALSE(shared.stats().shared);
  CHECK_FALSE(gate.acquire_until(in(50ms), {}));
  CHECK(gate.stats().in_use == 0);
  CHECK(gate.stats().waiting == 0);
}
