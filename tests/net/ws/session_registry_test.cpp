#include "net/ws/session_registry.hpp"

#include <catch2/catch.hpp>

using exai::net::SessionRegistry;
using namespace std::chrono_literals;

TEST_CASE("sessions can be resumed until they expired after their last connection left",
          "[net][sessions]")
{
  SessionRegistry registry(10s);
  const auto t0 = SessionRegistry::Clock::time_point{} + 1h;
  const auto id = registry.create(t0);
  CHECK(registry.size() == 1);
  CHECK(registry.attached() == 1);
  CHECK_FALSE(registry.resume("unknown", t0));

  registry.detach(id, t0 + 1s);
  CHECK(registry.attached() == 0);
  CHECK(registry.resume(id, t0 + 5s));
  CHECK(registry.attached() == 1);
  registry.detach(id, t0 + 5s);

  registry.sweep(t0 + 10s); // not yet
  CHECK(registry.size() == 1);
  registry.sweep(t0 + 16s);
  CHECK(registry.size() == 0);
  CHECK_FALSE(registry.resume(id, t0 + 16s));
}

TEST_CASE("an attached session never expires", "[net][sessions]")
{
  SessionRegistry registry(1s);
  const auto t0 = SessionRegistry::Clock::time_point{} + 1h;
  const auto id = registry.create(t0);
  registry.sweep(t0 + 1h);
  CHECK(registry.size() == 1);
  CHECK(registry.resume(id, t0 + 1h)); // a second connection on the same session
  registry.detach(id, t0 + 1h);
  CHECK(registry.attached() == 1);
  registry.detach(id, t0 + 1h);
  CHECK(registry.attached() == 0);
}
