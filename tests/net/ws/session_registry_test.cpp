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

TEST_CASE("a full registry forgets the session left longest ago, never one with a connection",
          "[net][sessions]")
{
  SessionRegistry registry(1h);
  const auto t0 = SessionRegistry::Clock::time_point{} + 1h;
  const auto kept = registry.create(t0); // stays attached throughout
  const auto first_left = registry.create(t0);
  const auto second_left = registry.create(t0);
  registry.detach(second_left, t0 + 1s);
  registry.detach(first_left, t0 + 1s); // left after second_left, at the same time
  for (std::size_t i = registry.size(); i < SessionRegistry::kMaxSessions; ++i) {
    registry.detach(registry.create(t0 + 2s), t0 + 2s);
  }
  CHECK(registry.size() == SessionRegistry::kMaxSessions);
  (void)registry.create(t0 + 3s);
  CHECK(registry.size() == SessionRegistry::kMaxSessions);
  CHECK_FALSE(registry.resume(second_left, t0 + 3s)); // the one left first went
  CHECK(registry.resume(first_left, t0 + 3s));
  (void)registry.create(t0 + 3s); // the next oldest left now: not first_left, resumed
  CHECK(registry.resume(first_left, t0 + 3s));
  CHECK(registry.resume(kept, t0 + 3s));
  CHECK(registry.attached() == 4);
}

TEST_CASE("hellos at a full registry cost no scan of it", "[net][sessions]")
{
  SessionRegistry registry(1h);
  const auto t0 = SessionRegistry::Clock::time_point{} + 1h;
  for (std::size_t i = 0; i < SessionRegistry::kMaxSessions; ++i) {
    registry.detach(registry.create(t0), t0);
  }
  // Connect, hello, disconnect, over and over: each hello makes room. A
  // scan of the 100,000 sessions per hello made these 20,000 take minutes in
  // a Debug build.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20000; ++i) {
    registry.detach(registry.create(t0 + 1s), t0 + 1s);
  }
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(registry.size() == SessionRegistry::kMaxSessions);
  // Sweeping forgets exactly the expired ones, oldest first.
  registry.sweep(t0 + 1h + 500ms);
  CHECK(registry.size() == 20000);
  registry.sweep(t0 + 2h);
  CHECK(registry.size() == 0);
  CHECK(registry.attached() == 0);
}
