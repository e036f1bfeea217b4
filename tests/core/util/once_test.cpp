#include "core/util/once.hpp"
#include "tests/support/race.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

TEST_CASE("threads racing on first use build the value exactly once", "[core][once]")
{
  constexpr int kThreads = 16;
  for (int round = 0; round < 20; ++round) {
    exai::core::OnceValue<std::vector<int>> registry;
    std::atomic<int> builds{0};
    std::vector<const std::vector<int>*> seen(kThreads, nullptr);
    exai::test::race(kThreads, [&](int i) {
      seen[static_cast<std::size_t>(i)] = &registry.get([&] {
        ++builds;
        return std::vector<int>{1, 2, 3};
      });
    });
    CHECK(builds == 1);
    for (const auto* p : seen) {
      CHECK(p == registry.peek());
    }
  }
}

TEST_CASE("a failed build is retried by the next caller", "[core][once]")
{
  exai::core::OnceValue<int> value;
  CHECK_THROWS(value.get([]() -> int { throw std::runtime_error("boom"); }));
  CHECK(value.peek() == nullptr);
  CHECK(value.get([] { return 5; }) == 5);
  CHECK(value.get([] { return 6; }) == 5);
}
