// Many threads acquire, hold, release, time out and cancel across every scope;
// afterwards nothing is held or waiting, and no scope ever exceeded its
// capacity as seen by the workers themselves. Run under TSan by the test command.

#include "core/capacity/capacity_controller.hpp"
#include "tests/core/capacity/capacity_checks.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <vector>

using exai::core::CallPermits;
using exai::core::CapacityController;
using exai::core::CapacityLimits;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kSessions = 4;
constexpr std::size_t kConversations = 3;
constexpr std::array<const char*, 3> kProviders = {"kimi", "glm", ""};

// Occupancy counters the workers maintain themselves, and the worst seen.
struct Observed {
  std::atomic<int> global{0};
  std::array<std::atomic<int>, 2> provider{};
  std::array<std::atomic<int>, kSessions> session{};
  std::array<std::atomic<int>, kConversations> conversation{};
  std::atomic<int> violations{0};
  std::atomic<int> admitted{0};
  std::atomic<int> rejected{0};
  std::atomic<int> cancelled{0};
};

void
enter(std::atomic<int>& counter, int capacity, Observed& seen)
{
  if (counter.fetch_add(1) + 1 > capacity) {
    ++seen.violations;
  }
}

} // namespace

TEST_CASE("capacity under concurrent load never overflows and always returns to zero",
          "[core][capacity_stress]")
{
  CapacityLimits limits;
  limits.global = 5;
  limits.session = 3;
  limits.conversation = 1;
  limits.providers = {{"kimi", 3}, {"glm", 2}};
  CapacityController controller(limits);
  Observed seen;
  std::atomic<bool> stop_all{false};
  constexpr int kWorkers = 12;

  std::vector<std::jthread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(w) * 7919U + 1U);
      std::uniform_int_distribution<int> pick(0, 99);
      while (!stop_all) {
        const std::size_t session = static_cast<std::size_t>(pick(rng)) % kSessions;
        const int conv_pick = pick(rng) % (static_cast<int>(kConversations) + 1);
        const std::size_t provider = static_cast<std::size_t>(pick(rng)) % kProviders.size();
        exai::core::CallScopes scopes{
            "s" + std::to_string(session),
            conv_pick == static_cast<int>(kConversations) ? "" : "c" + std::to_string(conv_pick),
            kProviders[provider]};
        std::stop_source cancel;
        std::optional<std::jthread> canceller;
        const int mode = pick(rng);
        if (mode < 10) {
          canceller.emplace([&cancel] {
            std::this_thread::yield();
            cancel.request_stop();
          });
        }
        const auto timeout = mode < 30 ? 0ms : std::chrono::milliseconds(1 + pick(rng) % 5);
        auto result = controller.acquire(
            scopes, CapacityController::Clock::now() + timeout, cancel.get_token());
        if (auto* rejection = std::get_if<exai::core::CapacityRejection>(&result)) {
          if (rejection->status == exai::core::AcquireStatus::cancelled) {
            ++seen.cancelled;
          } else {
            ++seen.rejected;
          }
          continue;
        }
        ++seen.admitted;
        enter(seen.global, 5, seen);
        enter(seen.session[session], 3, seen);
        if (!scopes.conversation_id.empty()) {
          enter(seen.conversation[static_cast<std::size_t>(conv_pick)], 1, seen);
        }
        if (provider < 2) {
          enter(seen.provider[provider], provider == 0 ? 3 : 2, seen);
        }
        if (pick(rng) < 50) {
          std::this_thread::yield();
        }
        // Leave the counters before the permits are released.
        --seen.global;
        --seen.session[session];
        if (!scopes.conversation_id.empty()) {
          --seen.conversation[static_cast<std::size_t>(conv_pick)];
        }
        if (provider < 2) {
          --seen.provider[provider];
        }
        std::get<CallPermits>(result).reset();
      }
    });
  }
  const auto run_for = 2s;
  std::this_thread::sleep_for(run_for); // the test's duration, not a synchronisation
  stop_all = true;
  workers.clear();

  CHECK(seen.violations == 0);
  CHECK(seen.admitted > 100);
  CHECK(seen.rejected + seen.cancelled > 0);
  exai::test::check_all_zero(controller);
}
