#include "core/calls/inflight_registry.hpp"
#include "tests/support/race.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using Registry = exai::core::InflightRegistry<int>;

TEST_CASE("an entry lives exactly as long as its ticket", "[core][inflight_registry]")
{
  Registry registry;
  {
    auto ticket = registry.insert("r1", std::make_shared<int>(7));
    REQUIRE(ticket);
    CHECK(registry.size() == 1);
    REQUIRE(registry.find("r1"));
    CHECK(*registry.find("r1") == 7);
  }
  CHECK(registry.size() == 0);
  CHECK_FALSE(registry.find("r1"));
}

TEST_CASE("a duplicate request id is detected and changes nothing", "[core][inflight_registry]")
{
  Registry registry;
  auto first = registry.insert("r1", std::make_shared<int>(1));
  REQUIRE(first);
  CHECK_FALSE(registry.insert("r1", std::make_shared<int>(2)));
  CHECK(*registry.find("r1") == 1);
  CHECK(registry.size() == 1);
  first->reset();
  CHECK(registry.insert("r1", std::make_shared<int>(3)));
}

TEST_CASE("moving a ticket moves ownership of the entry", "[core][inflight_registry]")
{
  Registry registry;
  auto ticket = registry.insert("r1", std::make_shared<int>(1));
  REQUIRE(ticket);
  Registry::Ticket moved = std::move(*ticket);
  ticket.reset();
  CHECK(registry.size() == 1);
  CHECK(moved.key() == "r1");
  auto other = registry.insert("r2", std::make_shared<int>(2));
  moved = std::move(*other); // releases r1, now owns r2
  CHECK_FALSE(registry.find("r1"));
  CHECK(registry.find("r2"));
  moved.reset();
  other.reset();
  CHECK(registry.size() == 0);
}

TEST_CASE("concurrent inserts of one id admit exactly one", "[core][inflight_registry]")
{
  Registry registry;
  constexpr int kThreads = 8;
  std::atomic<int> admitted{0};
  std::vector<std::optional<Registry::Ticket>> tickets(kThreads);
  exai::test::race(kThreads, [&](int i) {
    tickets[static_cast<std::size_t>(i)] = registry.insert("same", std::make_shared<int>(i));
    if (tickets[static_cast<std::size_t>(i)]) {
      ++admitted;
    }
  });
  CHECK(admitted == 1);
  CHECK(registry.all().size() == 1);
  tickets.clear();
  CHECK(registry.size() == 0);
}
