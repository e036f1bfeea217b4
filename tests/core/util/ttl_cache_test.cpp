#include "core/util/ttl_cache.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using Cache = exai::core::TtlCache<std::string>;

namespace {

struct FakeClock {
  Cache::Clock::time_point now{};
  Cache::Now fn()
  {
    return [this] { return now; };
  }
};

} // namespace

TEST_CASE("a stored result is replayable until its ttl ends", "[core][ttl_cache]")
{
  FakeClock clock;
  Cache cache(600s, 100, clock.fn());
  cache.put("r1", "result");
  clock.now += 599s;
  CHECK(cache.get("r1") == "result");
  clock.now += 1s;
  CHECK_FALSE(cache.get("r1"));
  CHECK(cache.size() == 0);
}

TEST_CASE("the store never holds more than its bound; the oldest goes first", "[core][ttl_cache]")
{
  FakeClock clock;
  Cache cache(600s, 3, clock.fn());
  for (int i = 0; i < 10; ++i) {
    cache.put("r" + std::to_string(i), "v");
    clock.now += 1s;
  }
  CHECK(cache.size() == 3);
  CHECK_FALSE(cache.get("r6"));
  CHECK(cache.get("r7"));
  CHECK(cache.get("r9"));
}

TEST_CASE("putting a key again replaces it and renews its ttl", "[core][ttl_cache]")
{
  FakeClock clock;
  Cache cache(10s, 10, clock.fn());
  cache.put("k", "old");
  clock.now += 8s;
  cache.put("k", "new");
  clock.now += 8s;
  CHECK(cache.get("k") == "new");
  CHECK(cache.size() == 1);
}

TEST_CASE("a zero ttl stores nothing", "[core][ttl_cache]")
{
  Cache cache(0s, 10);
  cache.put("k", "v");
  CHECK(cache.size() == 0);
}
